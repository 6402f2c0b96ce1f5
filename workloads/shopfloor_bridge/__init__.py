"""The Shopfloor protocol bridge: Modbus TCP and OPC UA sources into MQTT (Sparkplug B or JSON) and OPC UA."""
