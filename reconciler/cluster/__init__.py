"""All Kubernetes I/O: discovery, apply, prune, inventory, live-object watches, health."""
