"""Failover on the simulated edge site, measured from the field device's own record (prints numbers; no assertions).

    .venv/bin/python bench/bench_failover.py [--runs 5] [--partitions 2] [--partition-seconds 15]

The example production line runs; tank-1 drives tank-io, which records every write with the writer's address.
- power loss: tank-1's node is powered off; measured until tank-1 answers Modbus on another node with the new pod
  holding the Lease, and until the new runtime's first write reaches tank-io. The floor is the lease expiry the
  operator must wait for (leaseDuration + 1/6, less the time since the last renewal), shown next to it.
- partition: tank-1's node loses its uplink (field devices stay reachable); the same two times, and the writes the
  cut-off runtime made after its successor's first write (overlapping writes, from tank-io's record; must be 0).
- hot standby: tank-1 switched to `redundancy: HotStandby`; its primary's node is powered off (or cut off from the
  API); measured until the standby's first write reaches tank-io (the floor: takeoverAfter) and until the status
  names it; overlapping writes again from tank-io's record.
- Lease renewals: Lease updates per PLC per minute, counted with a watch on the line's Leases.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from kubernetes import client, watch

REPO = Path(__file__).resolve().parents[1]
for root in ("operator", "workloads", "localsite"):
    sys.path.insert(0, str(REPO / root))

from shopfloor_api.runtime_contract import LockTiming, StandbyTiming  # noqa: E402
from shopfloor_localsite.plant.write_record import PodAddressBook, overlaps  # noqa: E402
from shopfloor_localsite.site.edgesite import EdgeSite, SiteOptions  # noqa: E402
from shopfloor_localsite.site.line import LINE, apply_production_line, wait_line_running  # noqa: E402
from shopfloor_localsite.site.probes import SiteProbe  # noqa: E402

PLC, DEVICE = "tank-1", "tank-io"


def summary(label: str, samples: list[float], floor: float | None = None) -> None:
    if not samples:
        print(f"{label:<52} no samples")
        return
    line = f"{label:<52} median {statistics.median(samples):5.2f} s  min {min(samples):5.2f}  max {max(samples):5.2f}"
    if floor:
        line += f"  ({statistics.median(samples) / floor:.2f}x the lease expiry floor {floor:.2f} s)"
    print(line)


def first_write_after(site: EdgeSite, book: PodAddressBook, pod: str, after_ns: int) -> int | None:
    for write in list(site.device(DEVICE).writes):
        if write.monotonic_ns >= after_ns and book(write.peer_host).endswith("/" + pod):
            return write.monotonic_ns
    return None


def cut_while_writing(site: EdgeSite, probe: SiteProbe, pod: str, node: str, fault: str) -> tuple[PodAddressBook, int]:
    """Once `pod` is writing tank-io (its record cleared first), cut `node`'s power or uplink; returns the address
    book naming the writers and the moment of the cut (monotonic ns)."""
    book = PodAddressBook(site.api, f"app.kubernetes.io/instance={PLC}")
    book.refresh()
    site.device(DEVICE).writes.clear()
    probe.wait(lambda: first_write_after(site, book, pod, 0), 60, f"{pod} writing")
    started_ns = time.monotonic_ns()
    (site.power_off if fault == "power" else site.partition)(node)
    return book, started_ns


def fail_once(site: EdgeSite, probe: SiteProbe, fault: str, hold_s: float) -> dict[str, Any]:
    old = probe.status(LINE, PLC)
    book, started_ns = cut_while_writing(site, probe, old["podName"], old["nodeName"], fault)

    def serving() -> Any:
        status = probe.status(LINE, PLC)
        endpoints = probe.endpoints(LINE, PLC)
        ok = (
            status.get("podName") != old["podName"]
            and status.get("lock", {}).get("holder") == status.get("podName")
            and endpoints is not None
            and endpoints.pod == status["podName"]
            and probe.read_modbus(LINE, PLC, "inputRegisters", 2, "UDINT") is not None
        )
        return ok and status

    moved = probe.wait(serving, 120, "tank-1 serving elsewhere")
    serving_s = (time.monotonic_ns() - started_ns) / 1e9
    book.refresh()
    first = probe.wait(lambda: first_write_after(site, book, moved["podName"], started_ns), 60, "first new write")
    if fault == "partition":
        probe.wait(lambda: time.monotonic_ns() - started_ns > hold_s * 1e9, hold_s + 5, "the partition held")
        site.heal(old["nodeName"])
        runner = site.runner
        assert runner is not None
        probe.wait(lambda: not [w for w in runner.workloads() if w["pod"] == old["podName"]], 60, "old removed")
    else:
        site.power_on(old["nodeName"])
    probe.wait(lambda: site.plane.node_ready(old["nodeName"]), 60, "node Ready again")
    return {
        "serving_s": serving_s,
        "first_write_s": (first - started_ns) / 1e9,
        "overlaps": len(overlaps(list(site.device(DEVICE).writes), book)),
    }


def pair_in_sync(probe: SiteProbe) -> dict[str, Any] | None:
    status = probe.status(LINE, PLC)
    pair = status.get("redundancy") or {}
    holder = (status.get("lock") or {}).get("holder")
    if not pair.get("inSync") or status.get("phase") != "Running" or holder != status.get("podName"):
        return None
    return {**pair, "primary": status["podName"], "primaryNode": status["nodeName"]}


def fail_pair_once(site: EdgeSite, probe: SiteProbe, fault: str) -> dict[str, Any]:
    pair = probe.wait(lambda: pair_in_sync(probe), 180, "tank-1's standby in sync")
    book, started_ns = cut_while_writing(site, probe, pair["primary"], pair["primaryNode"], fault)
    first = probe.wait(lambda: first_write_after(site, book, pair["standby"], started_ns), 60, "the standby writing")
    probe.wait(lambda: probe.status(LINE, PLC).get("podName") == pair["standby"], 60, "status naming the standby")
    status_s = (time.monotonic_ns() - started_ns) / 1e9
    result = {
        "first_write_s": (first - started_ns) / 1e9,
        "status_s": status_s,
        "overlaps": len(overlaps(list(site.device(DEVICE).writes), book)),
    }
    (site.power_on if fault == "power" else site.heal)(pair["primaryNode"])
    probe.wait(lambda: site.plane.node_ready(pair["primaryNode"]), 60, "node Ready again")
    return result


def renewals_per_minute(site: EdgeSite, seconds: float) -> dict[str, float]:
    counts: Counter[str] = Counter()
    coordination = client.CoordinationV1Api(site.api)
    started = time.monotonic()
    # The server ends the watch after `seconds`; every MODIFIED event is one write to a Lease.
    for event in watch.Watch().stream(coordination.list_namespaced_lease, LINE, timeout_seconds=int(seconds)):
        if event["type"] == "MODIFIED":
            counts[event["object"].metadata.name] += 1
    elapsed = time.monotonic() - started
    return {name: count * 60 / elapsed for name, count in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="power losses")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--partition-seconds", type=float, default=15.0)
    parser.add_argument("--standby-runs", type=int, default=5, help="power losses with hot standby")
    parser.add_argument("--standby-partitions", type=int, default=2)
    args = parser.parse_args()
    for library in ("pymodbus", "asyncua"):
        logging.getLogger(library).setLevel(logging.CRITICAL)
    timing = LockTiming()
    floor = timing.lease_duration_s + timing.takeover_margin_s - timing.renew_interval_s / 2
    with EdgeSite(SiteOptions()) as site:
        probe = SiteProbe(site)
        apply_production_line(site, probe)
        wait_line_running(probe)
        per_minute = renewals_per_minute(site, 30.0)
        power = [fail_once(site, probe, "power", 0) for _ in range(args.runs)]
        cut = [fail_once(site, probe, "partition", args.partition_seconds) for _ in range(args.partitions)]
        probe.patch_spec(LINE, PLC, {"redundancy": {"mode": "HotStandby"}})
        pair_power = [fail_pair_once(site, probe, "power") for _ in range(args.standby_runs)]
        pair_cut = [fail_pair_once(site, probe, "partition") for _ in range(args.standby_partitions)]
    print(f"failover on the simulated edge site (2-core machine; leaseDuration {timing.lease_duration_s:g}s)")
    summary(f"power loss -> serving elsewhere ({args.runs} runs)", [r["serving_s"] for r in power], floor)
    summary("power loss -> first field write of the new runtime", [r["first_write_s"] for r in power], floor)
    summary(f"partition -> serving elsewhere ({args.partitions} runs)", [r["serving_s"] for r in cut], floor)
    summary("partition -> first field write of the new runtime", [r["first_write_s"] for r in cut], floor)
    standby = StandbyTiming()
    pair_floor = standby.takeover_after_s
    summary(f"hot standby: power loss -> standby writes ({args.standby_runs} runs)",
            [r["first_write_s"] for r in pair_power])  # fmt: skip
    print(f"{'':<52} ({statistics.median([r['first_write_s'] for r in pair_power]) / pair_floor:.2f}x "
          f"takeoverAfter {pair_floor:g} s)" if pair_power else "")  # fmt: skip
    summary("hot standby: power loss -> status names the standby", [r["status_s"] for r in pair_power])
    summary(f"hot standby: partition -> standby writes ({args.standby_partitions} runs)",
            [r["first_write_s"] for r in pair_cut])  # fmt: skip
    print(f"{'':<52} (floor: L - L/6 + takeoverAfter = "
          f"{timing.lease_duration_s - timing.fence_margin_s + pair_floor:.2f} s after the last renewal)")  # fmt: skip
    runs = power + cut + pair_power + pair_cut
    print(f"overlapping writes in all runs: {sum(r['overlaps'] for r in runs)} ({len(runs)} runs)")
    for name, rate in sorted(per_minute.items()):
        expected = 60 / timing.renew_interval_s
        print(f"Lease {name}: {rate:.0f} updates per minute (renewals at L/3: {expected:.0f}; report changes add some)")
    plcs = [rate for name, rate in per_minute.items() if name in ("tank-1", "conveyor-1")]
    if plcs:
        print(f"at this rate 1,000 PLCs cost {statistics.mean(plcs) * 1000 / 60:.0f} Lease writes per second")


if __name__ == "__main__":
    main()
