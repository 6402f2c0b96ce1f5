"""The simulated edge site: real workload processes on this machine attached to the pods kwok runs on simulated
edge nodes, so each reads its program from the API and renews its Lease exactly as it would in the pod."""
