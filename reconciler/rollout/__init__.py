"""Progressive delivery: canary and blue/green rollouts through Gateway API route weights, gated by
PromQL analysis and protocol probes, rolled back in Git (ARCHITECTURE.md §7, "rollout as a step
function beside the pass")."""
