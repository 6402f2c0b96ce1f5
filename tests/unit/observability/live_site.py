"""A real Prometheus scraping the real metrics classes of the three processes, fed continuously.

Every metric of every class is fed generically (no metric is named here), with label values the code uses where the
dashboards match on them, so a new metric is fed too. Scrape targets carry the labels the chart's PodMonitors add.
"""

from __future__ import annotations

import importlib
import json
import math
import random
import shutil
import socket
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, start_http_server
from prometheus_client.metrics import MetricWrapperBase

from shopfloor_api.virtualplc import Phase
from shopfloor_bridge.tags import Quality
from shopfloor_operator.controller import CONTROLLERS
from shopfloor_vplc.image import PlcState
from tests.support.waiting import wait_for
from tests.unit.observability.exported import metrics_instances

PROMETHEUS = shutil.which("prometheus")
SCRAPE_SECONDS = 1
LABEL_VALUES = {
    "state": [PlcState.RUNNING.value],
    "phase": [each.value for each in Phase],
    "controller": list(CONTROLLERS.values()),
    "quality": [each.value for each in Quality],
    "result": ["ok", "error", "success", "timeout"],
    "device": ["tank-io"],
    "revision": ["sha256:0a1b2c"],
}
TARGETS = {
    "shopfloor_operator.metrics": (
        "shopfloor-operator",
        {"namespace": "shopfloor-system", "pod": "shopfloor-operator-5d8f2"},
    ),
    "shopfloor_vplc.metrics": (
        "shopfloor-vplc",
        {"namespace": "line-1", "pod": "tank-1-3f9a2", "plc": "tank-1", "node": "edge-rt-1"},
    ),
    "shopfloor_bridge.metrics": (
        "shopfloor-bridge",
        {"namespace": "line-1", "pod": "line-1-bridge-8c1d0", "bridge": "line-1-bridge", "node": "edge-1"},
    ),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children(metric: MetricWrapperBase) -> list[Any]:
    names = getattr(metric, "_labelnames", ())  # no public accessor in prometheus_client
    if not names:
        return [metric]
    first = [LABEL_VALUES.get(name, ["probe"]) for name in names]
    # One child per value of the first label with known values; the other labels take their first value.
    rows: list[list[str]] = [[values[0] for values in first]]
    for position, values in enumerate(first):
        for value in values[1:]:
            row = [each[0] for each in first]
            row[position] = value
            rows.append(row)
    return [metric.labels(*row) for row in rows]


def feed(metrics: list[MetricWrapperBase]) -> None:
    """One tick: counters grow, gauges hold 1, histograms see a few observations (sub-ms to ms)."""
    for metric in metrics:
        for child in _children(metric):
            if isinstance(metric, Counter):
                child.inc(random.randint(1, 5))
            elif isinstance(metric, Gauge):
                child.set(1)
            elif isinstance(metric, Histogram | Summary):
                for _ in range(5):
                    child.observe(random.uniform(0.0001, 0.004))


@dataclass
class LiveSite:
    url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{params}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def label_values(self, label: str, match: str) -> list[str]:
        params = urllib.parse.urlencode({"match[]": match} if match else {})
        with urllib.request.urlopen(f"{self.url}/api/v1/label/{label}/values?{params}", timeout=10) as response:
            return list(json.loads(response.read())["data"])

    def has_data(self, expr: str) -> bool:
        """At least one series with a real number (histogram_quantile over no observations gives NaN)."""
        results = self.query(expr)
        values = [float(each["value"][1]) for each in results]
        return any(not math.isnan(value) for value in values)


@contextmanager
def live_site(workdir: Path) -> Iterator[LiveSite]:
    assert PROMETHEUS is not None
    stop = threading.Event()
    servers = []
    metrics: list[MetricWrapperBase] = []
    scrape_configs = []
    for module_name, (job, labels) in TARGETS.items():
        registry = CollectorRegistry()
        for instance in metrics_instances(importlib.import_module(module_name)):
            for value in vars(instance).values():
                if isinstance(value, MetricWrapperBase):
                    metrics.append(value)
                elif isinstance(value, CollectorRegistry):
                    registry = value
        server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
        servers.append(server)
        target = {"targets": [f"127.0.0.1:{server.server_port}"], "labels": labels}
        scrape_configs.append({"job_name": job, "static_configs": [target]})

    def feeder() -> None:
        while not stop.is_set():
            feed(metrics)
            stop.wait(0.2)

    thread = threading.Thread(target=feeder, name="metrics-feeder", daemon=True)
    thread.start()
    port = free_port()
    config = workdir / "prometheus.yml"
    interval = f"{SCRAPE_SECONDS}s"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": interval, "evaluation_interval": interval},
                "scrape_configs": scrape_configs,
            }
        )
    )
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    site = LiveSite(f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: _ready(site), timeout=30, what="Prometheus to answer")
        yield site
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        stop.set()
        thread.join(timeout=5)
        for server in servers:
            server.shutdown()


def _ready(site: LiveSite) -> bool:
    try:
        with urllib.request.urlopen(f"{site.url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
