"""The production line on the simulated edge site, end to end: the demo's story as assertions.

The tests share one site; each starts from the line's steady state (the `line` fixture brings it back), so they
pass in any order."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import yaml

from shopfloor_localsite.demo import read_opcua
from shopfloor_localsite.nodes import REALTIME_LABEL
from shopfloor_localsite.site.edgesite import EdgeSite
from shopfloor_localsite.site.line import EXAMPLES
from shopfloor_localsite.site.probes import SiteProbe
from shopfloor_localsite.site.sparkplug_watch import SparkplugWatch
from tests.support.sparkplug import BOOLEAN, FLOAT, UINT32, decode, metric_value

# Each test starts from the line's steady state, whatever the test before it did.
pytestmark = pytest.mark.usefixtures("steady_line")


def modbus(probe: SiteProbe, plc: str, table: str, address: int, kind: str) -> Any:
    return probe.wait(
        lambda: (value := probe.read_modbus("line-1", plc, table, address, kind)) is not None and (value,),
        20,
        f"{plc} {table}[{address}] over Modbus",
    )[0]


def test_plcs_run_on_realtime_nodes_and_report_through_their_lease(line: str, probe: SiteProbe) -> None:
    for name in ("tank-1", "conveyor-1"):
        status = probe.status(line, name)
        assert probe.node_labels(status["nodeName"]).get(REALTIME_LABEL) == "true"
        lease = probe.lease(line, name)
        assert lease["holder"] == status["podName"]
        assert lease["shopfloor.io/state"] == "Running"
        assert lease["shopfloor.io/active-revision"] == status["program"]["activeRevision"]
        assert probe.condition(line, name, "Ready")["status"] == "True"
        assert status["observedGeneration"] == probe.get(line, name)["metadata"]["generation"]


def test_tank_level_stays_inside_its_band(line: str, probe: SiteProbe) -> None:
    levels = []
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        levels.append(modbus(probe, "tank-1", "inputRegisters", 0, "REAL"))
        time.sleep(0.25)
    assert min(levels) >= 35.0 and max(levels) <= 65.0, (min(levels), max(levels))
    assert max(levels) - min(levels) > 5.0, "the level should move as the valve opens and closes"


def test_modbus_and_opcua_agree_with_the_logic(line: str, probe: SiteProbe, site: EdgeSite) -> None:
    endpoints = probe.endpoints(line, "tank-1")
    assert endpoints is not None and endpoints.opcua is not None
    over_opcua = asyncio.run(read_opcua(endpoints.opcua, site.workdir, ["Level", "FillBelow", "StopAbove", "Pump"]))
    over_modbus = modbus(probe, "tank-1", "inputRegisters", 0, "REAL")
    assert abs(over_opcua["Level"] - over_modbus) < 3.0
    assert (over_opcua["FillBelow"], over_opcua["StopAbove"]) == (40.0, 60.0)
    assert modbus(probe, "tank-1", "holdingRegisters", 0, "REAL") == 40.0
    assert over_opcua["Pump"] is (over_modbus > 10.0)
    assert modbus(probe, "tank-1", "discreteInputs", 1, "BOOL") is (over_modbus > 10.0)


def test_sparkplug_payloads_decode_with_the_official_schema_and_carry_the_values(
    line: str, probe: SiteProbe, sparkplug: SparkplugWatch
) -> None:
    probe.wait(lambda: any("/NBIRTH/" in t for t, _ in sparkplug.raw), 60, "NBIRTH")
    probe.wait(lambda: sum("/NDATA/" in t for t, _ in since_last_birth(sparkplug.raw)) >= 5, 60, "NDATA")
    topic, payload = next((t, p) for t, p in sparkplug.raw if "/NBIRTH/" in t)
    assert topic == "spBv1.0/plant-a/NBIRTH/line-1"
    birth = decode(payload)
    metrics = {m.name: m for m in birth.metrics}
    assert set(metrics) == {
        "bdSeq",
        "Node Control/Rebirth",
        "tank/Level",
        "tank/Fills",
        "tank/FillBelow",
        "tank/HighAlarm",
        "tank/LowAlarm",
        "conveyor/PartsTotal",
        "conveyor/Motor",
    }
    assert metrics["tank/Level"].datatype == FLOAT and metrics["tank/Fills"].datatype == UINT32
    assert metrics["tank/HighAlarm"].datatype == BOOLEAN
    latest = dict(metric_values(since_last_birth(sparkplug.raw)))
    assert 30.0 <= latest["tank/Level"] <= 70.0
    assert latest["tank/FillBelow"] == 40.0
    assert latest["tank/HighAlarm"] is False

    def parts_counted() -> bool:
        """conveyor/PartsTotal, which the bridge publishes as it changes, larger in a later message than earlier."""
        totals = [v for name, v in metric_values(since_last_birth(sparkplug.raw)) if name == "conveyor/PartsTotal"]
        totals = [v for v in totals if v is not None]
        return len(totals) >= 2 and totals[-1] > totals[0]

    probe.wait(parts_counted, 60, "conveyor/PartsTotal growing over Sparkplug (a part every few seconds)")
    previous = None
    for topic, payload in sparkplug.raw:
        if "/NDEATH/" in topic or "/N" not in topic:
            continue
        seq = decode(payload).seq
        if "/NBIRTH/" in topic:
            assert seq == 0
        else:
            assert previous is not None and seq == (previous + 1) % 256
        previous = seq


def since_last_birth(raw: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The node's messages from its latest NBIRTH on (a line applied again starts a new bridge and session)."""
    messages = list(raw)
    births = [i for i, (topic, _) in enumerate(messages) if "/NBIRTH/" in topic]
    return messages[births[-1] :] if births else []


def metric_values(messages: list[tuple[str, bytes]]) -> list[tuple[str, Any]]:
    """(metric, value) as published, replaying births and data in order: data names metrics by the birth's aliases
    (a birth may carry nulls for tags the bridge has not read yet; their first values then come as data)."""
    values: list[tuple[str, Any]] = []
    aliases: dict[int, str] = {}
    for topic, payload in messages:
        if "/NBIRTH/" in topic or "/NDATA/" in topic:
            message = decode(payload)
            if "/NBIRTH/" in topic:
                aliases = {m.alias: m.name for m in message.metrics if m.name != "bdSeq"}
            values.extend((m.name or aliases.get(m.alias, ""), metric_value(m)) for m in message.metrics)
    return values


def test_online_change_keeps_the_counter_and_reports_the_new_revision(line: str, probe: SiteProbe) -> None:
    probe.wait(lambda: modbus(probe, "conveyor-1", "inputRegisters", 0, "UDINT") >= 1, 60, "a delivered part")

    def verified(status: dict[str, Any]) -> bool:
        program = status.get("program") or {}
        return bool(program.get("lastKnownGoodRevision") == program.get("activeRevision") != "")

    probe.wait(lambda: verified(probe.status(line, "conveyor-1")), 60, "the running revision verified")
    before = probe.status(line, "conveyor-1")
    parts_before = modbus(probe, "conveyor-1", "inputRegisters", 0, "UDINT")
    changed = (EXAMPLES / "conveyor.st").read_text().replace("IdleTime : TIME := T#5s;", "IdleTime : TIME := T#4s;")
    probe.patch_spec(line, "conveyor-1", {"program": {"source": changed}})
    phases: set[str] = set()

    def switched() -> bool:
        status = probe.status(line, "conveyor-1")
        phases.add(status.get("phase", ""))
        active = status["program"]["activeRevision"]
        return bool(active != before["program"]["activeRevision"] and status.get("phase") == "Running")

    probe.wait(switched, 90, "the new revision active and verified")
    after = probe.status(line, "conveyor-1")
    assert "Updating" in phases
    assert after["podName"] == before["podName"], "an online change keeps the pod"
    assert probe.lease(line, "conveyor-1")["shopfloor.io/active-revision"] == after["program"]["activeRevision"]
    assert after["program"]["lastKnownGoodRevision"] == after["program"]["activeRevision"]
    parts_after = modbus(probe, "conveyor-1", "inputRegisters", 0, "UDINT")
    assert parts_after >= parts_before >= 1, "the retained counter went on from its value (not from zero)"
    probe.wait(
        lambda: modbus(probe, "conveyor-1", "inputRegisters", 0, "UDINT") > parts_after,
        60,
        "a part counted by the new revision",
    )


def test_an_invalid_program_is_refused_and_the_old_one_keeps_running(line: str, probe: SiteProbe) -> None:
    active = probe.status(line, "conveyor-1")["program"]["activeRevision"]
    bad = (EXAMPLES / "conveyor.st").read_text().replace("Motor := Idle.Q;", "Motor := Idle.Q AND ;")
    bad_line = bad.splitlines().index("Motor := Idle.Q AND ;") + 1
    probe.patch_spec(line, "conveyor-1", {"program": {"source": bad}})
    condition = probe.wait(
        lambda: (c := probe.condition(line, "conveyor-1", "ProgramValid"))["status"] == "False" and c,
        30,
        "ProgramValid=False",
    )
    assert condition["message"].startswith(f"{bad_line}:"), condition["message"]
    assert probe.status(line, "conveyor-1")["program"]["activeRevision"] == active
    assert probe.lease(line, "conveyor-1")["shopfloor.io/state"] == "Running"
    assert any("ProgramInvalid" in event for event in probe.events(line, "conveyor-1"))


def test_a_program_that_faults_during_verification_is_rolled_back(line: str, probe: SiteProbe) -> None:
    good_source = (EXAMPLES / "conveyor.st").read_text()  # what the line runs (the `line` fixture sees to that)
    good = probe.status(line, "conveyor-1")["program"]["activeRevision"]
    faulty = good_source.replace(
        "    BatchDone : BOOL;\n", "    BatchDone : BOOL;\n    Zero : INT := 0;\n    Ratio : INT;\n"
    ).replace("BatchDone := Batch.Q;", "BatchDone := Batch.Q;\nRatio := BatchSize / Zero;")
    probe.patch_spec(line, "conveyor-1", {"program": {"source": faulty}})
    probe.wait(
        lambda: probe.status(line, "conveyor-1")["program"].get("failedRevision") not in ("", None), 90, "a rollback"
    )
    probe.wait(lambda: probe.status(line, "conveyor-1")["program"]["activeRevision"] == good, 60, "the old revision")
    assert probe.status(line, "conveyor-1")["program"]["lastKnownGoodRevision"] == good
    assert probe.condition(line, "conveyor-1", "Degraded")["status"] == "True"
    assert any(event.startswith("RolledBack: rolled back to " + good) for event in probe.events(line, "conveyor-1"))


def test_a_node_failure_moves_the_plc_and_keeps_its_retained_variables(
    line: str, probe: SiteProbe, site: EdgeSite
) -> None:
    probe.wait(lambda: modbus(probe, "tank-1", "inputRegisters", 2, "UDINT"), 60, "a tank refill")

    def checkpointed_fills() -> Any:
        """Fills as the runtime checkpointed it (a power loss keeps what was checkpointed, every ~2 s)."""
        data = probe.core.read_namespaced_config_map("tank-1-retain", line).data or {}
        saved = json.loads(data.get("retain.json", "{}")).get("values", {}).get("Fills")
        live = modbus(probe, "tank-1", "inputRegisters", 2, "UDINT")
        return saved is not None and saved == live and (saved,)

    fills = probe.wait(checkpointed_fills, 30, "Fills checkpointed")[0]
    old = probe.status(line, "tank-1")
    site.plane.set_node_heartbeat(old["nodeName"], False)
    try:
        moved = probe.wait(
            lambda: (
                (s := probe.status(line, "tank-1"))["nodeName"] not in ("", old["nodeName"])
                and s["phase"] == "Running"
                and probe.endpoints(line, "tank-1")
                and s
            ),
            120,
            "tank-1 Running on another node",
        )
        assert probe.node_labels(moved["nodeName"]).get(REALTIME_LABEL) == "true"
        assert moved["podName"] != old["podName"]
        assert modbus(probe, "tank-1", "inputRegisters", 2, "UDINT") >= fills
        assert site.runner is not None
        running = [w for w in site.runner.workloads() if w["owner"] == "tank-1" and w["running"]]
        assert len(running) == 1, "a PLC never runs twice"
    finally:
        site.plane.set_node_heartbeat(old["nodeName"], True)


def test_deleting_the_namespace_stops_every_runtime(probe: SiteProbe, site: EdgeSite) -> None:
    """In a namespace of its own, so the line the other tests share stays: a copy of conveyor-1 without its field
    device (the line's conveyor-1 drives conveyor-io)."""
    manifest = yaml.safe_load((EXAMPLES / "conveyor-1.yaml").read_text())
    manifest["metadata"]["namespace"] = SCRATCH
    del manifest["spec"]["io"]["fieldDevices"]
    site.kubectl("create", "namespace", SCRATCH)
    site.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    assert site.runner is not None
    runner = site.runner

    def runtimes() -> list[dict[str, Any]]:
        return [w for w in runner.workloads() if w["namespace"] == SCRATCH]

    probe.wait(
        lambda: probe.status(SCRATCH, "conveyor-1").get("phase") == "Running" and any(w["running"] for w in runtimes()),
        120,
        f"{SCRATCH}/conveyor-1 Running in its runtime",
    )
    probe.core.delete_namespace(SCRATCH)
    probe.wait(lambda: not runtimes(), 120, "all runtimes stopped")


SCRATCH = "line-1-deleted"
