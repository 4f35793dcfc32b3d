"""``reconciler check -o junit`` and ``-o sarif``: the check report for CI systems.

JUnit XML: one ``<testsuite>`` per touched environment with the test cases ``render``, ``policies``
(its evaluation), one per policy result (a deny or violation is a ``<failure>``, a warning passes with
its text in ``<system-out>``, an excused result is ``<skipped>``) and ``dry-run``.

SARIF 2.1.0 (https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html): one run of the tool
``reconciler``; its rules are the policy rules that reported something (``id`` = ``package.rule``), each
result names its rule, has level ``error`` (deny, violation), ``warning`` (warn) or ``note``
(excused), and is located at the object: a logical location ``<env>/<Kind>/<namespace>/<name>`` (kind
``resource``) in the environment's file ``envs/<env>.yaml``; the rule's definition (policy file and
line) is a related location. Render, evaluation and dry-run failures are results of the rules
``reconciler.render``, ``reconciler.policy`` and ``reconciler.dry-run``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from reconciler.model import PolicyFinding
from reconciler.model.policy import Severity
from reconciler.promote.check import CheckReport, EnvCheck

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.DENY: "error", Severity.WARN: "warning", Severity.EXCEPTION: "note"}
_STAGE_RULES = {
    "reconciler.render": "The environment's overlay renders",
    "reconciler.policy": "The environment's policies can be evaluated",
    "reconciler.dry-run": "The API server accepts the objects (server-side dry-run)",
}


def failed_stage(e: EnvCheck) -> str:
    """Which stage failed the environment besides its policy results: ``render`` (the environment's file
    or overlay), ``policy`` (the policies could not be evaluated), ``dry-run`` or ``""``."""
    if e.ok or e.denials:
        return ""
    if e.policies == "failed":
        return "policy"
    if e.dry_run == "failed":
        return "dry-run"
    return "render"


def _case(suite: ET.Element, classname: str, name: str) -> ET.Element:
    return ET.SubElement(suite, "testcase", {"classname": classname, "name": name, "time": "0"})


def junit(report: CheckReport) -> str:
    """The report as JUnit XML."""
    root = ET.Element("testsuites", {"name": "reconciler check"})
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for e in report.environments:
        suite = ET.SubElement(root, "testsuite", {"name": e.environment})
        counts = {"tests": 0, "failures": 0, "skipped": 0}

        def add(classname: str, name: str, *, failure: str = "", skipped: str = "", out: str = "") -> None:
            case = _case(suite, classname, name)  # noqa: B023 - used at once
            counts["tests"] += 1  # noqa: B023
            if failure:
                ET.SubElement(case, "failure", {"message": failure[:1000], "type": "failure"}).text = failure
                counts["failures"] += 1  # noqa: B023
            elif skipped:
                ET.SubElement(case, "skipped", {"message": skipped})
                counts["skipped"] += 1  # noqa: B023
            if out:
                ET.SubElement(case, "system-out").text = out

        env = e.environment
        stage = failed_stage(e)
        add(env, "render", failure=e.error if stage == "render" else "")
        if stage == "policy":
            add(env, "policies", failure=e.error)
        elif e.policies in ("none", "skipped"):
            add(env, "policies", skipped="no policies" if e.policies == "none" else "did not render")
        else:
            add(env, "policies")
        for f in e.policy:
            name = f"{f.rule} {f.object}"
            if f.severity is Severity.DENY:
                add(f"{env}.{f.package}", name, failure=f"{f.message} ({f.where})")
            elif f.severity is Severity.WARN:
                add(f"{env}.{f.package}", name, out=f"warning: {f.message} ({f.where})")
            else:
                add(f"{env}.{f.package}", name, skipped=f"excused by an exception rule: {f.message}")
        dry_failed = e.error if stage == "dry-run" else ""
        add(env, "dry-run", failure=dry_failed, skipped="" if e.dry_run != "skipped" else "no dry-run")
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("errors", "0")
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _object_location(env: str, obj: str) -> dict[str, Any]:
    return {
        "physicalLocation": {"artifactLocation": {"uri": f"envs/{env}.yaml"}},
        "logicalLocations": [
            {"fullyQualifiedName": f"{env}/{obj}", "name": obj.rsplit("/", 1)[-1], "kind": "resource"}
        ],
    }


def _finding_result(e: EnvCheck, f: PolicyFinding, index: int) -> dict[str, Any]:
    region = {"startLine": f.line} if f.line else None
    related: dict[str, Any] = {"id": 0, "physicalLocation": {"artifactLocation": {"uri": f.file}}}
    if region:
        related["physicalLocation"]["region"] = region
    related["message"] = {"text": f"rule {f.rule_id}"}
    result: dict[str, Any] = {
        "ruleId": f.rule_id,
        "ruleIndex": index,
        "level": _LEVEL[f.severity],
        "message": {"text": f"{f.object}: {f.message}"},
        "locations": [_object_location(e.environment, f.object)],
        "relatedLocations": [related],
        "properties": {"environment": e.environment, "object": f.object, "severity": f.severity.value},
    }
    if f.details:
        result["properties"]["details"] = f.details
    return result


def sarif(report: CheckReport, *, version: str = "") -> dict[str, Any]:
    """The report as a SARIF 2.1.0 log (a JSON-compatible dict)."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}

    def rule(rule_id: str, description: str, properties: dict[str, Any] | None = None) -> int:
        if rule_id not in index:
            index[rule_id] = len(rules)
            entry: dict[str, Any] = {
                "id": rule_id,
                "name": rule_id.rsplit(".", 1)[-1],
                "shortDescription": {"text": description},
            }
            if properties:
                entry["properties"] = properties
            rules.append(entry)
        return index[rule_id]

    results: list[dict[str, Any]] = []
    for e in report.environments:
        for f in e.policy:
            i = rule(
                f.rule_id,
                f"policy rule {f.rule} of package {f.package} ({f.file})",
                {"package": f.package, "file": f.file},
            )
            results.append(_finding_result(e, f, i))
        stage = failed_stage(e) and f"reconciler.{failed_stage(e)}"
        if stage:
            i = rule(stage, _STAGE_RULES[stage])
            results.append(
                {
                    "ruleId": stage,
                    "ruleIndex": i,
                    "level": "error",
                    "message": {"text": f"{e.environment}: {e.error}"},
                    "locations": [
                        {"physicalLocation": {"artifactLocation": {"uri": f"envs/{e.environment}.yaml"}}}
                    ],
                    "properties": {"environment": e.environment},
                }
            )
    driver: dict[str, Any] = {
        "name": "reconciler",
        "informationUri": "https://github.com/reconciler-dev/reconciler",
        "rules": rules,
    }
    if version:
        driver["version"] = version
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": driver},
                "results": results,
                "properties": {"base": report.base, "head": report.head, "ok": report.ok},
            }
        ],
    }
