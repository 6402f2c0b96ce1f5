"""`shopfloor-bridge run FILE` as a process: probes, metrics, NDEATH as the Will when the bridge dies."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.bridge.devices import HOLDING, ModbusDevice
from tests.integration.bridge.manifests import bridge_manifest, modbus_source, write_manifest
from tests.integration.bridge.probe import Probe
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.sparkplug import metric_value
from tests.support.waiting import wait_for

TAGS = [{"name": "Count", "table": "holdingRegisters", "address": 0, "type": "UINT"}]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


@pytest.fixture
def device_and_manifest(tmp_path: Path, broker: Mosquitto) -> Iterator[tuple[ModbusDevice, Path]]:
    loop = asyncio.new_event_loop()
    device = ModbusDevice()
    loop.run_until_complete(device.start())
    loop.run_until_complete(device.set(HOLDING, 0, [11]))
    # The device's server runs on this loop; keep it turning in a thread while the bridge process polls it.
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    document = bridge_manifest(
        [modbus_source(device.port, TAGS)],
        mqtt={"url": broker.url, "sparkplug": {"groupId": "plant-a", "edgeNodeId": "line-1"}},
    )
    yield device, write_manifest(document, tmp_path / "bridge.yaml")
    asyncio.run_coroutine_threadsafe(device.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def start_bridge(manifest: Path, tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "shopfloor_bridge.cli", "run", str(manifest), "--listen", f"127.0.0.1:{port}",
         "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_probes_metrics_and_clean_stop(broker: Mosquitto, tmp_path: Path, device_and_manifest: tuple) -> None:
    _device, manifest = device_and_manifest
    probe = Probe(broker, ("spBv1.0/#",)).start()
    port = free_port()
    process = start_bridge(manifest, tmp_path, port)
    try:
        wait_for_status(f"http://127.0.0.1:{port}/readyz", 200)
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        wait_for_metric(port, 'shopfloor_bridge_tags{quality="good"} 1.0')
        status, metrics = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert 'shopfloor_bridge_polls_total{device="mixer",result="ok"}' in metrics
        assert "shopfloor_bridge_end_to_end_latency_seconds_bucket" in metrics
        assert "shopfloor_bridge_buffer_dropped_messages_total 0.0" in metrics
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        process.kill()
    wait_sync(lambda: probe.of_kind("NDEATH"))
    probe.stop()


def test_killed_bridge_is_announced_by_its_will(broker: Mosquitto, tmp_path: Path, device_and_manifest: tuple) -> None:
    _device, manifest = device_and_manifest
    probe = Probe(broker, ("spBv1.0/#",)).start()
    process = start_bridge(manifest, tmp_path, free_port())
    try:
        wait_sync(lambda: probe.of_kind("NBIRTH"))
        process.kill()  # no clean disconnect: the broker publishes the Will
        process.wait(10)
    finally:
        process.kill()
    death = wait_sync(lambda: probe.of_kind("NDEATH"))[0].sparkplug()
    birth = probe.of_kind("NBIRTH")[0].sparkplug()
    bd_seq = {m.name: metric_value(m) for m in birth.metrics}["bdSeq"]
    assert [(m.name, m.long_value) for m in death.metrics] == [("bdSeq", bd_seq)]
    probe.stop()


def test_invalid_manifest_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    document = bridge_manifest([modbus_source(502, [{"name": "X", "table": "coils", "address": 0, "type": "REAL"}])])
    write_manifest(document, bad)
    result = subprocess.run(
        [sys.executable, "-m", "shopfloor_bridge.cli", "run", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "spec.sources[0].modbus.tags[0]" in result.stderr


def wait_sync(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    return wait_for(condition, timeout=timeout, interval=0.05)


def wait_for_status(url: str, status: int) -> None:
    wait_sync(lambda: get(url)[0] == status)


def wait_for_metric(port: int, line: str) -> None:
    wait_sync(lambda: line in get(f"http://127.0.0.1:{port}/metrics")[1])
