"""The bridge reading a real vPLC runtime (`shopfloor-vplc run`) over Modbus TCP, and writing back to it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from shopfloor_bridge.sparkplug.sparkplug_payload_pb2 import Payload
from tests.integration.bridge.manifests import bridge_manifest, config_of, modbus_source
from tests.integration.bridge.probe import Probe, eventually
from tests.integration.bridge.test_modbus_to_mqtt import last_values, running
from tests.support.mosquitto import Mosquitto, free_port

PROGRAM = """PROGRAM Main
VAR
    Count : DINT;
    Step : DINT := 1;
END_VAR
Count := Count + Step;
END_PROGRAM
"""


@pytest.fixture
def vplc(tmp_path: Path) -> Iterator[int]:
    """A vPLC counting every 10 ms cycle, Count and Step mapped to holding registers 0 and 2; yields its port."""
    port = free_port()
    manifest = {
        "apiVersion": "shopfloor.io/v1alpha1",
        "kind": "VirtualPLC",
        "metadata": {"name": "counter"},
        "spec": {
            "program": {"source": PROGRAM},
            "cycleTime": "10ms",
            "io": {
                "modbus": {
                    "port": 5020,
                    "map": [
                        {"variable": "Count", "table": "holdingRegisters", "address": 0},
                        {"variable": "Step", "table": "holdingRegisters", "address": 2},
                    ],
                },
                "opcua": {"enabled": False},
            },
        },
    }
    path = tmp_path / "counter.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    process = subprocess.Popen(
        [sys.executable, "-m", "shopfloor_vplc.cli", "run", str(path), "--host", "127.0.0.1",
         "--modbus-port", str(port), "--http-port", str(free_port()), "--retain-file", str(tmp_path / "retain.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


async def test_bridge_publishes_a_running_vplc_and_writes_back(broker: Mosquitto, tmp_path: Path, vplc: int) -> None:
    tags = [
        {"name": "Count", "table": "holdingRegisters", "address": 0, "type": "DINT"},
        {"name": "Step", "table": "holdingRegisters", "address": 2, "type": "DINT"},
    ]
    document = bridge_manifest(
        [modbus_source(vplc, tags, name="counter")],
        mqtt={"url": broker.url, "sparkplug": {"groupId": "plant-a", "edgeNodeId": "line-1"}},
        writes={"enabled": True, "allow": ["counter/Step"]},
    )
    probe = Probe(broker, ("spBv1.0/#",)).start()
    async with running(config_of(document, tmp_path / "state")) as bridge:
        first = await eventually(lambda: last_values(probe).get("counter/Count"), timeout=20, what="the PLC's count")
        await eventually(lambda: (last_values(probe).get("counter/Count") or 0) > first, what="counting")  # type: ignore[operator]
        command = Payload()
        command.metrics.add(name="counter/Step", int_value=0)  # stop counting, through the bridge
        probe.client.publish("spBv1.0/plant-a/NCMD/line-1", command.SerializeToString(), qos=1)
        await eventually(lambda: last_values(probe).get("counter/Step") == 0, what="Step written to the PLC")
        stopped = last_values(probe)["counter/Count"]
        polls = bridge.metrics.polls.labels("counter", "ok")
        seen = polls._value.get()
        await eventually(lambda: polls._value.get() >= seen + 5, what="five more polls")
        assert last_values(probe)["counter/Count"] == stopped
    probe.stop()
