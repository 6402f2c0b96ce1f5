"""Edge site timings, end to end on this machine (prints numbers; no assertions).

- apply -> first Modbus answer with the program running (a VirtualPLC created from nothing);
- online change: spec patched -> the new revision reported active by the runtime's Lease;
- node failure: the PLC's node loses power -> the PLC answering Modbus again on another node.

Each is measured N times (default 3) on one site. Run: .venv/bin/python bench/bench_site.py [--runs N]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import yaml

from shopfloor_localsite.site.edgesite import EdgeSite, SiteOptions
from shopfloor_localsite.site.line import EXAMPLES
from shopfloor_localsite.site.probes import SiteProbe


def manifest(name: str) -> str:
    document = yaml.safe_load((EXAMPLES / "conveyor-1.yaml").read_text())
    document["metadata"]["name"] = name
    document["metadata"]["namespace"] = "bench"
    return yaml.safe_dump(document)


def summary(label: str, samples: list[float]) -> None:
    print(f"{label:<48} median {statistics.median(samples):6.2f} s   min {min(samples):6.2f}   max {max(samples):6.2f}")


def measure(site: EdgeSite, probe: SiteProbe, run: int) -> tuple[float, float, float]:
    name = f"plc-{run}"

    def modbus_answers() -> bool:
        return probe.read_modbus("bench", name, "inputRegisters", 0, "UDINT") is not None

    def running() -> bool:
        return probe.status("bench", name).get("phase") == "Running"

    started = time.monotonic()
    site.kubectl("apply", "-f", "-", stdin=manifest(name))
    probe.wait(modbus_answers, 120, f"{name} answering Modbus")
    to_modbus = time.monotonic() - started
    probe.wait(running, 120, f"{name} Running")

    source = (EXAMPLES / "conveyor.st").read_text().replace("T#5s", f"T#{run + 6}s")
    before = probe.lease("bench", name).get("shopfloor.io/active-revision")
    started = time.monotonic()
    probe.patch_spec("bench", name, {"program": {"source": source}})
    probe.wait(lambda: probe.lease("bench", name).get("shopfloor.io/active-revision") != before, 120, "new revision")
    to_change = time.monotonic() - started
    probe.wait(running, 120, "verified")

    node = probe.status("bench", name)["nodeName"]

    def serving_elsewhere() -> bool:
        endpoints = probe.endpoints("bench", name)
        return endpoints is not None and endpoints.node != node and modbus_answers()

    started = time.monotonic()
    site.power_off(node)
    probe.wait(serving_elsewhere, 180, "serving on another node")
    to_move = time.monotonic() - started
    site.power_on(node)
    probe.wait(lambda: site.plane.node_ready(node), 60, "node back")
    site.kubectl("delete", "virtualplc", name, "-n", "bench", "--wait=true")
    return to_modbus, to_change, to_move


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for library in ("pymodbus", "asyncua"):  # the plant's devices run in this process; their chatter is noise here
        logging.getLogger(library).setLevel(logging.CRITICAL)
    with EdgeSite(SiteOptions(broker=False)) as site:
        probe = SiteProbe(site)
        probe.core.create_namespace({"metadata": {"name": "bench"}})
        results = [measure(site, probe, run) for run in range(args.runs)]
        print(f"edge site timings over {args.runs} runs (2-core machine, leaseDuration 3 s)")
        summary("apply -> first Modbus answer, program running", [r[0] for r in results])
        summary("online change: apply -> new revision active", [r[1] for r in results])
        summary("node failure -> serving again on another node", [r[2] for r in results])


if __name__ == "__main__":
    main()
