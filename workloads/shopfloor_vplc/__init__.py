"""The vPLC runtime: Structured Text programs (compiled by shopfloor_st) on a deterministic scan engine that drives
remote I/O and serves Modbus TCP and OPC UA. Entry point: `shopfloor-vplc` (shopfloor_vplc.cli)."""
