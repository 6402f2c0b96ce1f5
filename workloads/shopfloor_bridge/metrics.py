"""The bridge's Prometheus metrics, in a registry of their own so several bridges can live in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class BridgeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "shopfloor_bridge_polls_total", "Source polls by device and result (ok, timeout, error)",
            ["device", "result"], registry=r,
        )  # fmt: skip
        self.poll_duration = Histogram(
            "shopfloor_bridge_poll_duration_seconds", "Time to read all tags of a device once", ["device"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.source_connected = Gauge(
            "shopfloor_bridge_source_connected", "1 while the bridge is connected to the source", ["device"], registry=r
        )
        self.tags = Gauge("shopfloor_bridge_tags", "Tags by quality (good, bad)", ["quality"], registry=r)
        self.published = Counter(
            "shopfloor_bridge_messages_published_total", "MQTT messages acknowledged by the broker, by kind",
            ["kind"], registry=r,
        )  # fmt: skip
        self.buffered_bytes = Gauge(
            "shopfloor_bridge_buffer_bytes", "Bytes in the store-and-forward buffer on disk", registry=r
        )
        self.buffered_messages = Gauge(
            "shopfloor_bridge_buffer_messages", "Messages waiting in the store-and-forward buffer", registry=r
        )
        self.dropped = Counter(
            "shopfloor_bridge_buffer_dropped_messages_total", "Messages dropped because the buffer was full",
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "shopfloor_bridge_end_to_end_latency_seconds", "From reading a value at the source to the broker's ack",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.mqtt_connected = Gauge(
            "shopfloor_bridge_mqtt_connected", "1 while an MQTT session is established", registry=r
        )
        self.writes = Counter(
            "shopfloor_bridge_writes_total", "Write-back requests by origin and result (written, refused, failed)",
            ["origin", "result"], registry=r,
        )  # fmt: skip
