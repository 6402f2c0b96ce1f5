"""The local edge site: a real Kubernetes control plane built from Go modules, with simulated edge nodes."""
