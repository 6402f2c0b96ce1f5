"""What the vPLC runtime and the protocol bridge share in a pod: the Lease reporter, the ConfigMap watcher and
the health/metrics HTTP port. Configured from the environment (see shopfloor_inpod.settings)."""
