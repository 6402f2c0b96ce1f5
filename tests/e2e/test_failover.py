"""One controller per process, always: failover on the simulated edge site, proven from the field device's own
record of who wrote when (tank-io records every write with the writer's connection; runtimes connect from their
pod's address, so the record names the pod). Each test starts from the line's steady state (`steady_line`). The
API outage still comes last: after it, the simulated kubelets (kwok) and the watches come back with client-go's
back-off, and a hot standby asked for right after it was not in sync within the 120 s its test allows (a reversed
run); the other tests pass in either order."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shopfloor_localsite.plant.write_record import overlaps, writers_in_order
from shopfloor_localsite.site.edgesite import EdgeSite, SiteFaults
from shopfloor_localsite.site.probes import SiteProbe

from .conftest import PlantWrites

# Each test starts from the line's steady state, whatever the test before it did.
pytestmark = pytest.mark.usefixtures("steady_line")

PLC, DEVICE = "tank-1", "tank-io"


def serving_elsewhere(probe: SiteProbe, line: str, old: dict[str, Any]) -> Any:
    """The PLC Running in a new pod that holds its Lease, answering Modbus from that pod's runtime."""
    status = probe.status(line, PLC)
    if status.get("podName") == old["podName"] or status.get("phase") != "Running":
        return None
    if (status.get("lock") or {}).get("holder") != status["podName"]:
        return None
    endpoints = probe.endpoints(line, PLC, pod=status["podName"])
    if endpoints is None or probe.read_modbus(line, PLC, "inputRegisters", 2, "UDINT") is None:
        return None
    return status


def lease_unrenewed_for(probe: SiteProbe, line: str) -> float:
    lease = probe.coordination.read_namespaced_lease(PLC, line)
    return time.time() - lease.spec.renew_time.timestamp()


def wrote(plant_writes: PlantWrites, line: str, pod: str) -> bool:
    return f"{line}/{pod}" in plant_writes.writers(DEVICE)


def test_a_partitioned_primary_never_writes_alongside_its_replacement(
    line: str, probe: SiteProbe, site: EdgeSite, faults: SiteFaults, plant_writes: PlantWrites
) -> None:
    old = probe.status(line, PLC)
    epoch = old["lock"]["epoch"]
    assert old["lock"]["holder"] == old["podName"]
    probe.wait(lambda: wrote(plant_writes, line, old["podName"]), 60, "tank-1 writing its valve")
    faults.partition(old["nodeName"])
    cut_at = time.monotonic()
    moved = probe.wait(lambda: serving_elsewhere(probe, line, old), 60, "tank-1 serving in a new pod")
    served_after = time.monotonic() - cut_at
    assert moved["lock"]["epoch"] > epoch
    assert moved["nodeName"] != old["nodeName"], "the replacement avoids the node that stopped renewing"
    probe.wait(lambda: wrote(plant_writes, line, moved["podName"]), 60, "the replacement writing the valve")
    # The cut-off runtime keeps running (its node did not die) and keeps scanning, fenced: it says so and never
    # writes again.
    assert site.runner is not None
    assert [w for w in site.runner.workloads() if w["pod"] == old["podName"] and w["running"]]
    probe.wait(lambda: probe.metric(line, old["podName"], "shopfloor_vplc_fenced") == 1.0, 20, "the old one fenced")
    probe.wait(lambda: time.monotonic() - cut_at > 30, 40, "the partition to last 30 s")
    faults.heal(old["nodeName"], close_after=3.0)  # queued requests reach the API server late, as after a real heal
    probe.wait(lambda: not [w for w in site.runner.workloads() if w["pod"] == old["podName"]], 60, "old runtime gone")
    assert probe.lease(line, PLC)["holder"] == moved["podName"], "the healed runtime never took the Lease back"
    overlapping = plant_writes.overlaps(DEVICE)
    writers = plant_writes.writers(DEVICE)
    print(f"partition: serving elsewhere after {served_after:.1f}s; writers {writers}; overlapping writes: 0")
    assert not overlapping, f"writes from a runtime after its successor started: {overlapping[:5]}"
    assert writers == [f"{line}/{old['podName']}", f"{line}/{moved['podName']}"], writers
    assert probe.status(line, PLC)["lock"]["epoch"] == moved["lock"]["epoch"]


def test_power_loss_moves_the_plc_within_seconds_with_one_writer(
    line: str, probe: SiteProbe, faults: SiteFaults, plant_writes: PlantWrites
) -> None:
    old = probe.status(line, PLC)
    probe.wait(lambda: wrote(plant_writes, line, old["podName"]), 60, "tank-1 writing its valve")
    faults.power_off(old["nodeName"])
    lost_at = time.monotonic()
    moved = probe.wait(lambda: serving_elsewhere(probe, line, old), 60, "tank-1 serving on another node")
    served_after = time.monotonic() - lost_at
    print(f"power loss: tank-1 serving on {moved['nodeName']} {served_after:.1f}s later")
    assert moved["nodeName"] != old["nodeName"]
    probe.wait(lambda: wrote(plant_writes, line, moved["podName"]), 60, "the replacement writing the valve")
    assert not plant_writes.overlaps(DEVICE)
    events = probe.events(line, PLC)
    assert any(e.startswith(f"Failover: Lease of {old['podName']} expired") for e in events), events


def test_an_operator_killed_during_a_failover_converges_with_one_writer(
    line: str, probe: SiteProbe, site: EdgeSite, faults: SiteFaults, plant_writes: PlantWrites
) -> None:
    old = probe.status(line, PLC)
    probe.wait(lambda: wrote(plant_writes, line, old["podName"]), 60, "tank-1 writing its valve")
    assert site.operator is not None
    faults.power_off(old["nodeName"])
    # Killed while the Lease runs out (unrenewed for 2 s of its 3): the new operator has seen nothing and waits a
    # whole lease period before it hands anything over.
    probe.wait(lambda: lease_unrenewed_for(probe, line) > 2.0, 30, "the Lease running out")
    site.operator.kill()
    site.operator.start()
    moved = probe.wait(lambda: serving_elsewhere(probe, line, old), 90, "tank-1 serving on another node")
    assert moved["lock"]["epoch"] == old["lock"]["epoch"] + 1, "the Lease was handed over exactly once"
    probe.wait(lambda: wrote(plant_writes, line, moved["podName"]), 60, "the replacement writing the valve")
    assert not plant_writes.overlaps(DEVICE)
    assert plant_writes.writers(DEVICE) == [f"{line}/{old['podName']}", f"{line}/{moved['podName']}"]


def redundancy(probe: SiteProbe, line: str) -> dict[str, Any] | None:
    """tank-1's primary and its standby, once the standby is in sync (from status, as a user reads it)."""
    status = probe.status(line, PLC)
    pair = status.get("redundancy") or {}
    if not pair.get("inSync") or status.get("phase") != "Running":
        return None
    if (status.get("lock") or {}).get("holder") != status.get("podName"):
        return None
    return {**pair, "primary": status["podName"], "primaryNode": status["nodeName"], "epoch": status["lock"]["epoch"]}


def standby_takes_over(
    line: str, probe: SiteProbe, site: EdgeSite, faults: SiteFaults, plant_writes: PlantWrites, fault: str
) -> dict[str, Any]:
    """With tank-1's pair in sync: cut the primary's power or uplink; the standby drives the valve with the state
    it followed, and tank-io's record shows one writer at a time. Returns the takeover's figures."""
    pair = probe.wait(lambda: redundancy(probe, line), 120, "tank-1's standby in sync")
    assert pair["standbyNode"] != pair["primaryNode"], "the pair is on two nodes"
    # From here on only: the pods before (a cold restart switched tank-1 to a pair; the last fault's) are behind us,
    # and a reused pod address of theirs cannot be mistaken for the standby's.
    since = len(plant_writes(DEVICE))
    primary_pod, standby_pod = f"{line}/{pair['primary']}", f"{line}/{pair['standby']}"

    def writers() -> list[str]:
        return writers_in_order(plant_writes(DEVICE)[since:], plant_writes.writer)

    probe.wait(lambda: primary_pod in writers(), 60, "the primary writing its valve")
    # The standby fails its readiness probe, so tank-1's Service leads to the primary only.
    runner = site.runner
    assert runner is not None
    primary_endpoints = probe.endpoints(line, PLC, pod=pair["primary"])
    assert primary_endpoints is not None
    probe.wait(lambda: runner.readiness.get(standby_pod) is False, 20, "the standby not Ready")
    assert runner.service_target(f"{PLC}.{line}", 502) == ("127.0.0.1", primary_endpoints.modbus)
    fills_before = probe.read_modbus(line, PLC, "inputRegisters", 2, "UDINT")
    assert fills_before is not None
    assert standby_pod not in writers(), "a standby never writes"
    cut_ns = time.monotonic_ns()
    (faults.power_off if fault == "power" else faults.partition)(pair["primaryNode"])

    def first_standby_write() -> int | None:
        mine = (w for w in plant_writes(DEVICE)[since:] if plant_writes.writer(w.peer_host) == standby_pod)
        return next((w.monotonic_ns for w in mine), None)

    first_ns = probe.wait(first_standby_write, 30, "the standby driving the valve")
    moved = probe.wait(lambda: serving_elsewhere(probe, line, {"podName": pair["primary"]}), 60, "status")
    assert moved["podName"] == pair["standby"], "the standby took over: no new pod was needed"
    assert moved["lock"]["epoch"] == pair["epoch"] + 1
    fills_after = probe.read_modbus(line, PLC, "inputRegisters", 2, "UDINT")
    # Bumpless: the refill counter goes on from the primary's (a cold start would restore the checkpoint, which may
    # be behind by the checkpoint interval).
    assert fills_after is not None and fills_before <= fills_after <= fills_before + 1
    if fault == "partition":
        # The cut-off primary keeps running, fenced, and never writes again, before or after the heal.
        probe.wait(lambda: probe.metric(line, pair["primary"], "shopfloor_vplc_fenced") == 1.0, 20, "old one fenced")
        faults.heal(pair["primaryNode"], close_after=3.0)
        probe.wait(lambda: not [w for w in runner.workloads() if w["pod"] == pair["primary"]], 60, "old one gone")
        assert probe.lease(line, PLC)["holder"] == pair["standby"], "the healed runtime never took the Lease back"
    overlapping = overlaps(plant_writes(DEVICE)[since:], plant_writes.writer)
    print(
        f"hot standby, {fault}: the standby drove the valve {(first_ns - cut_ns) / 1e6:.0f} ms after the cut; "
        f"Fills {fills_before} -> {fills_after}; overlapping writes: {len(overlapping)}"
    )
    assert not overlapping, overlapping[:5]
    assert writers() == [primary_pod, standby_pod]
    return {"took_over_s": (first_ns - cut_ns) / 1e9}


def test_hot_standby_takes_over_with_its_state_after_a_power_loss_and_after_a_partition(
    line: str, probe: SiteProbe, site: EdgeSite, faults: SiteFaults, plant_writes: PlantWrites
) -> None:
    probe.patch_spec(line, PLC, {"redundancy": {"mode": "HotStandby"}})
    try:
        standby_takes_over(line, probe, site, faults, plant_writes, "power")
        faults.restore()  # the node is back: the operator's new standby gets in sync there
        standby_takes_over(line, probe, site, faults, plant_writes, "partition")
    finally:
        faults.restore()
        probe.patch_spec(line, PLC, {"redundancy": {"mode": "None"}})

    def single_again() -> bool:
        assert site.runner is not None
        running = [w for w in site.runner.workloads() if w["owner"] == PLC and w["running"]]
        status = probe.status(line, PLC)
        return len(running) == 1 and status.get("phase") == "Running" and not status.get("redundancy")

    probe.wait(single_again, 120, "tank-1 back to a single runtime")


def test_an_api_outage_for_everyone_stops_nothing_and_replaces_nothing(
    line: str, probe: SiteProbe, site: EdgeSite, faults: SiteFaults, plant_writes: PlantWrites
) -> None:
    before = {name: probe.status(line, name) for name in (PLC, "conveyor-1")}
    probe.wait(lambda: wrote(plant_writes, line, before[PLC]["podName"]), 60, "tank-1 writing its valve")
    faults.stop_api_server()
    stopped_at = time.monotonic()
    try:
        during = len(plant_writes(DEVICE))
        # The plant keeps running on its own: tank-1 keeps driving its valve while the API server is away.
        probe.wait(
            lambda: len(plant_writes(DEVICE)) >= during + 2 and time.monotonic() - stopped_at > 60, 120, "60 s outage"
        )
        assert site.runner is not None
        alive = {w["pod"] for w in site.runner.workloads() if w["running"]}
        assert {status["podName"] for status in before.values()} <= alive
    finally:
        faults.start_api_server()

    def renewed_by_the_same_pods() -> bool:
        for name, status in before.items():
            now = probe.status(line, name)
            if probe.lease(line, name)["holder"] != status["podName"] or now["podName"] != status["podName"]:
                return False
            if now["lock"]["epoch"] != status["lock"]["epoch"] or now.get("phase") != "Running":
                return False
        return True

    probe.wait(renewed_by_the_same_pods, 60, "both PLCs renewed by the same pods, same epoch, Running")
    assert plant_writes.writers(DEVICE) == [f"{line}/{before[PLC]['podName']}"]
