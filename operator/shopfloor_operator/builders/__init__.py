"""Pure builders: one typed workload in, one Kubernetes manifest dict out; no client, no global configuration."""
