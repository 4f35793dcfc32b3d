// Command schemadump prints, as JSON, the parts of kustomize's built-in Kubernetes OpenAPI schema that
// its strategic-merge patches and namespace handling read: per apiVersion/kind the root definition, per
// definition the field tree (types, $refs, x-kubernetes-patch-strategy, merge keys / list-map keys), and
// which kinds are namespace-scoped. tools/controlplane/kustomize/gen_render_schema.py turns the output into
// reconciler/render/_k8s_schema.py.
package main

import (
	"encoding/json"
	"os"
	"sort"
	"strings"

	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/kustomize/kyaml/openapi"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

type node struct {
	Ref      string           `json:"r,omitempty"`
	Type     string           `json:"t,omitempty"`
	Props    map[string]*node `json:"p,omitempty"`
	Addl     *node            `json:"a,omitempty"`
	Items    *node            `json:"i,omitempty"`
	Strategy string           `json:"s,omitempty"`
	Keys     []string         `json:"k,omitempty"`
}

func convert(s *spec.Schema) *node {
	n := &node{}
	if r := s.Ref.String(); r != "" {
		n.Ref = strings.TrimPrefix(r, "#/definitions/")
		return n
	}
	if len(s.Type) == 1 {
		n.Type = s.Type[0]
	} else if len(s.Type) > 1 {
		n.Type = strings.Join(s.Type, ",")
	}
	if len(s.Properties) > 0 {
		n.Props = map[string]*node{}
		for k, v := range s.Properties {
			v := v
			n.Props[k] = convert(&v)
		}
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		n.Addl = convert(s.AdditionalProperties.Schema)
	}
	if s.Items != nil && s.Items.Schema != nil {
		n.Items = convert(s.Items.Schema)
	}
	rs := openapi.ResourceSchema{Schema: s}
	strategy, keys := rs.PatchStrategyAndKeyList()
	n.Strategy = strategy
	if strategy != "" {
		n.Keys = keys
	}
	return n
}

func main() {
	root := openapi.Schema()
	defs := map[string]*node{}
	gvk := map[string]string{}
	namespaced := map[string]bool{}
	names := make([]string, 0, len(root.Definitions))
	for k := range root.Definitions {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		d := root.Definitions[k]
		defs[k] = convert(&d)
		ext, ok := d.VendorExtensible.Extensions["x-kubernetes-group-version-kind"].([]interface{})
		if !ok {
			continue
		}
		for _, e := range ext {
			m, ok := e.(map[string]interface{})
			if !ok {
				continue
			}
			av, _ := m["version"].(string)
			if g, _ := m["group"].(string); g != "" {
				av = g + "/" + av
			}
			kind, _ := m["kind"].(string)
			gvk[av+"|"+kind] = k
			if ns, found := openapi.IsNamespaceScoped(yaml.TypeMeta{APIVersion: av, Kind: kind}); found {
				namespaced[av+"|"+kind] = ns
			}
		}
	}
	out := map[string]interface{}{
		"version":    openapi.GetSchemaVersion(),
		"gvk":        gvk,
		"defs":       defs,
		"namespaced": namespaced,
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
}
