"""Node-side pieces of Shopfloor: what a real-time edge node's container runtime runs, outside any pod."""
