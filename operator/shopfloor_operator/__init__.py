"""The Shopfloor operator: reconciles VirtualPLC and ProtocolBridge objects into pods on edge nodes (kopf)."""
