"""The production line's tank-1 moved onto a real node and back, with the line running around it.

real-rt-1 (a kubelet and containerd on this machine, realnode.py) joins the running site; tank-1 is pinned to it
under the real-time RuntimeClass, the way a user moves a PLC onto new hardware. It must come up there in a real
container with its retained state, drive the tank inside its band through the plant's device, answer Modbus and
OPC UA with the same values, and feed the bridge's Sparkplug data; then it moves back to a simulated real-time node.
Runs after the failover tests and before the production-line tests, which find tank-1 as they expect it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shopfloor_localsite.demo import read_opcua
from shopfloor_localsite.realnode import RealNode, RealNodeUnavailable
from shopfloor_localsite.realnode_config import REALTIME_RUNTIME_HANDLER, RealNodeSpec
from shopfloor_localsite.site.edgesite import EdgeSite
from shopfloor_localsite.site.probes import SiteProbe
from shopfloor_localsite.site.sparkplug_watch import SparkplugWatch
from tests.support.sparkplug import decode, metric_value

NODE = "real-rt-1"
PLC = "tank-1"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def real_node(site: EdgeSite, line: str) -> Iterator[RealNode]:
    """real-rt-1 for this module only: the site's other tests (and other suites' real nodes) find it gone."""
    try:
        node = site.add_real_node(RealNodeSpec(name=NODE))
    except RealNodeUnavailable as reason:
        pytest.skip(f"this machine cannot run a real node: {reason}")
    try:
        yield node
    finally:
        site.remove_real_node(NODE)


def fills(probe: SiteProbe, line: str) -> int:
    data = probe.core.read_namespaced_config_map(f"{PLC}-retain", line).data or {}
    return int(json.loads(data.get("retain.json", "{}")).get("values", {}).get("Fills", 0))


def running_on(probe: SiteProbe, line: str, node: str | None, not_pod: str) -> Any:
    """tank-1 Running in a new pod (on `node`, or on any node when None), with its endpoints reachable."""
    status = probe.status(line, PLC)
    moved = status.get("podName") not in ("", not_pod) and (node is None or status.get("nodeName") == node)
    return moved and status.get("phase") == "Running" and probe.endpoints(line, PLC) is not None and status


def test_tank_1_moves_onto_the_real_node_with_its_retained_state(
    site: EdgeSite, line: str, probe: SiteProbe, real_node: RealNode
) -> None:
    before = probe.status(line, PLC)
    kept = fills(probe, line)
    placement = {"realtime": "Required", "nodeName": NODE, "runtimeClassName": REALTIME_RUNTIME_HANDLER}
    probe.patch_spec(line, PLC, {"placement": placement})
    moved = probe.wait(lambda: running_on(probe, line, NODE, before["podName"]), 180, f"{PLC} Running on {NODE}")
    pod = probe.core.read_namespaced_pod(moved["podName"], line)
    (container,) = pod.status.container_statuses
    assert container.container_id.startswith("containerd://") and pod.status.qos_class == "Guaranteed"
    assert probe.lease(line, PLC)["shopfloor.io/realtime"] == "granted"
    # Retained variables came along (the runtime restored them from its retain ConfigMap through the API).
    retained = probe.wait(
        lambda: (v := probe.read_modbus(line, PLC, "inputRegisters", 2, "UDINT")) is not None and (v,), 30, "Fills"
    )[0]
    assert retained >= kept


def test_on_the_real_node_tank_1_keeps_the_level_in_band_and_its_interfaces_agree(
    site: EdgeSite, line: str, probe: SiteProbe, real_node: RealNode
) -> None:
    levels = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        level = probe.read_modbus(line, PLC, "inputRegisters", 0, "REAL")
        if level is not None:
            levels.append(level)
        time.sleep(0.25)
    assert levels and min(levels) >= 35.0 and max(levels) <= 65.0, levels
    endpoints = probe.endpoints(line, PLC)
    assert endpoints is not None and endpoints.opcua is not None and endpoints.node == NODE
    over_opcua = asyncio.run(read_opcua(endpoints.opcua, site.workdir, ["Level", "FillBelow", "StopAbove"]))
    over_modbus = probe.read_modbus(line, PLC, "inputRegisters", 0, "REAL")
    assert over_modbus is not None and abs(over_opcua["Level"] - over_modbus) < 3.0
    assert (over_opcua["FillBelow"], over_opcua["StopAbove"]) == (40.0, 60.0)


def test_the_bridge_publishes_the_real_nodes_values(
    line: str, probe: SiteProbe, sparkplug: SparkplugWatch, real_node: RealNode
) -> None:
    """The bridge on a simulated node reads tank-1 in its container through tank-1's Service."""
    mark = len(sparkplug.raw)

    def fresh_level() -> Any:
        aliases: dict[int, str] = {}
        for index, (topic, payload) in enumerate(list(sparkplug.raw)):
            if "/NBIRTH/" not in topic and "/NDATA/" not in topic:
                continue
            message = decode(payload)
            if "/NBIRTH/" in topic:
                aliases = {m.alias: m.name for m in message.metrics if m.name != "bdSeq"}
            if index < mark:
                continue
            for metric in message.metrics:
                if (metric.name or aliases.get(metric.alias, "")) == "tank/Level":
                    value = metric_value(metric)
                    if isinstance(value, float) and 30.0 <= value <= 70.0:
                        return (value,)
        return None

    probe.wait(fresh_level, 60, "a tank level published after the move")


def test_tank_1_moves_back_to_a_simulated_node(line: str, probe: SiteProbe, real_node: RealNode) -> None:
    before = probe.status(line, PLC)
    probe.patch_spec(line, PLC, {"placement": {"realtime": "Required", "nodeName": None, "runtimeClassName": None}})
    moved = probe.wait(lambda: running_on(probe, line, None, before["podName"]), 180, f"{PLC} back on a simulated node")
    assert moved["nodeName"] != NODE
