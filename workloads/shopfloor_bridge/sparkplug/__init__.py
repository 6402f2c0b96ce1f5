"""Sparkplug B: payload encoding and the edge node's session rules (birth, data, death, sequence numbers)."""
