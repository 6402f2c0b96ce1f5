"""`make demo`: the example production line on the simulated edge site, told as a story.

PLCs placed on real-time nodes and controlling the simulated plant, live values over Modbus and OPC UA, Sparkplug B
on MQTT, an online change that keeps the process state, a bad program refused while the old one keeps running, and
a node failure that moves a PLC to the other real-time node with its retained variables. `ONCE=1` (or --once) runs
the story and exits; otherwise the site stays up until Ctrl-C. Everything started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from shopfloor_localsite.build import BuildError, ensure_binaries, missing
from shopfloor_localsite.pki import opcua_application_certificate
from shopfloor_localsite.plant.write_record import PodAddressBook, overlaps, writers_in_order
from shopfloor_localsite.site.edgesite import EdgeSite, SiteOptions
from shopfloor_localsite.site.line import EXAMPLES, LINE, apply_production_line, wait_line_running
from shopfloor_localsite.site.probes import SiteProbe
from shopfloor_localsite.site.sparkplug_watch import SparkplugWatch
from shopfloor_st import source_revision


class Story:
    def __init__(self, site: EdgeSite, log_file: Path) -> None:
        self.site = site
        self.probe = SiteProbe(site)
        self.started = time.monotonic()
        self.log_file = log_file
        self.step_number = 0

    def step(self, title: str) -> None:
        self.step_number += 1
        print(f"\n== {self.step_number}. {title}", flush=True)

    def say(self, text: str) -> None:
        print(f"   {text}", flush=True)

    # -- 1. the line comes up ----------------------------------------------------------------------------------

    def apply_line(self) -> None:
        self.step("Apply the production line (kubectl apply -f examples/production-line/)")
        applied = apply_production_line(self.site, self.probe)
        for line in applied.strip().splitlines():
            self.say(line)
        since = time.monotonic()
        wait_line_running(self.probe, 90)
        self.say(f"both PLCs Running {time.monotonic() - since:.1f}s after apply")
        self.say("")
        self.say("$ kubectl get shopfloor -n line-1")
        for line in self.site.kubectl("get", "shopfloor", "-n", LINE).strip().splitlines():
            self.say(line)
        self.print_table()

    def print_table(self) -> None:
        self.say("")
        self.say(f"{'PLC':<12} {'NODE':<11} {'REVISION':<16} {'MODBUS':<17} {'OPC UA':<27} METRICS")
        for name in ("tank-1", "conveyor-1"):
            status = self.probe.status(LINE, name)
            endpoints = self.probe.endpoints(LINE, name)
            if endpoints is None:
                continue
            revision = (status.get("program") or {}).get("activeRevision", "")[:15]
            opcua = f"opc.tcp://127.0.0.1:{endpoints.opcua}" if endpoints.opcua else "-"
            self.say(
                f"{name:<12} {endpoints.node:<11} {revision:<16} 127.0.0.1:{endpoints.modbus:<7} {opcua:<27} "
                f"http://127.0.0.1:{endpoints.http}/metrics"
            )

    # -- 2. placement ------------------------------------------------------------------------------------------

    def placement(self) -> None:
        self.step("Placement: real-time PLCs only on PREEMPT_RT nodes")
        for name in ("tank-1", "conveyor-1"):
            node = self.probe.status(LINE, name).get("nodeName", "")
            rt = self.probe.node_labels(node).get("feature.node.kubernetes.io/kernel-config.PREEMPT_RT") == "true"
            self.say(f"{name} runs on {node} (PREEMPT_RT: {'yes' if rt else 'NO'})")

    # -- 3. live values ----------------------------------------------------------------------------------------

    def live_values(self) -> None:
        self.step("Live values over Modbus TCP: the PLCs control the simulated plant")
        for _ in range(4):
            level = self.probe.read_modbus(LINE, "tank-1", "inputRegisters", 0, "REAL")
            valve = self.probe.read_modbus(LINE, "tank-1", "discreteInputs", 0, "BOOL")
            fills = self.probe.read_modbus(LINE, "tank-1", "inputRegisters", 2, "UDINT")
            parts = self.probe.read_modbus(LINE, "conveyor-1", "inputRegisters", 0, "UDINT")
            motor = self.probe.read_modbus(LINE, "conveyor-1", "discreteInputs", 0, "BOOL")
            self.say(
                f"tank-1: Level {level} %  valve {'open' if valve else 'closed'}  fills {fills}   "
                f"conveyor-1: parts {parts}  motor {'on' if motor else 'off'}"
            )
            time.sleep(1.5)

    def opcua_values(self) -> None:
        self.step("The same values over OPC UA (Basic256Sha256, SignAndEncrypt)")
        endpoints = self.probe.endpoints(LINE, "tank-1")
        if endpoints is None or endpoints.opcua is None:
            self.say("tank-1 serves no OPC UA endpoint")
            return
        values = asyncio.run(read_opcua(endpoints.opcua, self.site.workdir, ["Level", "FillBelow", "StopAbove"]))
        for name, value in values.items():
            self.say(f"tank-1 {name} = {round(value, 2) if isinstance(value, float) else value}")

    def sparkplug(self, watch: SparkplugWatch) -> None:
        self.step("Sparkplug B on MQTT: the bridge publishes the line (group plant-a, edge node line-1)")
        births = self.probe.wait(lambda: watch.births, 60, "an NBIRTH from the bridge")
        birth = births[-1]
        self.say(f"NBIRTH bdSeq={birth['bdSeq']} with {len(birth['metrics'])} metrics: {', '.join(birth['metrics'])}")
        self.probe.wait(lambda: len(watch.data) >= 3, 30, "NDATA messages")
        for message in watch.data[-3:]:
            changes = ", ".join(
                f"{k}={round(v, 2) if isinstance(v, float) else v}" for k, v in message["metrics"].items()
            )
            self.say(f"NDATA seq={message['seq']}: {changes}")

    # -- 4. online change --------------------------------------------------------------------------------------

    def online_change(self) -> None:
        self.step("Online change of conveyor-1: a shorter idle time and a new uptime counter, no restart")
        source = (EXAMPLES / "conveyor.st").read_text()
        changed = source.replace("IdleTime : TIME := T#5s;", "IdleTime : TIME := T#3s;")
        changed = changed.replace(
            "    BatchDone : BOOL;\n", "    BatchDone : BOOL;\n    Uptime : TIME;\n    Second : TON;\n"
        )
        changed = changed.replace(
            "BatchDone := Batch.Q;\n",
            "BatchDone := Batch.Q;\nSecond(IN := NOT Second.Q, PT := T#1s);\n"
            "IF Second.Q THEN\n    Uptime := Uptime + T#1s;\nEND_IF;\n",
        )
        new_revision = source_revision(changed)

        def first_verified() -> bool:
            program = self.probe.status(LINE, "conveyor-1").get("program") or {}
            return bool(
                program.get("lastKnownGoodRevision")
                and program["lastKnownGoodRevision"] == program.get("activeRevision")
            )

        self.probe.wait(first_verified, 60, "the running revision verified (verifyFor)")
        before = self.probe.status(LINE, "conveyor-1")
        parts_before = self.probe.read_modbus(LINE, "conveyor-1", "inputRegisters", 0, "UDINT")
        self.say(f"PartsTotal before: {parts_before}; running {before['program']['activeRevision'][:19]}")
        since = time.monotonic()
        self.probe.patch_spec(LINE, "conveyor-1", {"program": {"source": changed}})
        phases: list[str] = []
        switched_after: list[float] = []

        def verified() -> bool:
            status = self.probe.status(LINE, "conveyor-1")
            if not phases or phases[-1] != status.get("phase"):
                phases.append(str(status.get("phase")))
            program = status.get("program") or {}
            if program.get("activeRevision") == new_revision and not switched_after:
                switched_after.append(time.monotonic() - since)
            return bool(program.get("lastKnownGoodRevision") == new_revision and status.get("phase") == "Running")

        self.probe.wait(verified, 90, "the new revision active and verified")
        after = self.probe.status(LINE, "conveyor-1")
        parts_after = self.probe.read_modbus(LINE, "conveyor-1", "inputRegisters", 0, "UDINT")
        self.say(f"status phases: {' -> '.join(phases)}")
        verified_after = time.monotonic() - since
        same_pod = after.get("podName") == before.get("podName")
        self.say(
            f"{new_revision[:19]} active {switched_after[0]:.1f}s after the apply, verified after {verified_after:.1f}s"
        )
        self.say(f"PartsTotal after: {parts_after} (kept across the change); same pod: {same_pod}")

    def bad_program(self) -> None:
        self.step("A bad program is refused; the running one keeps running")
        good = self.probe.status(LINE, "conveyor-1")["program"]["activeRevision"]
        source = (EXAMPLES / "conveyor.st").read_text().replace("Motor := Idle.Q;", "Motor := Idle.Q AND ;")
        self.probe.patch_spec(LINE, "conveyor-1", {"program": {"source": source}})
        condition = self.probe.wait(
            lambda: (c := self.probe.condition(LINE, "conveyor-1", "ProgramValid")).get("status") == "False" and c,
            30,
            "ProgramValid=False",
        )
        self.say(f"ProgramValid=False: {condition.get('message')}")
        still = self.probe.status(LINE, "conveyor-1")["program"]["activeRevision"]
        parts = self.probe.read_modbus(LINE, "conveyor-1", "inputRegisters", 0, "UDINT")
        self.say(f"active revision unchanged: {still == good}; still counting parts: {parts}")

    # -- 5. partition --------------------------------------------------------------------------------------------

    def partition(self, seconds: float = 20.0) -> None:
        self.step("Partition: tank-1's node loses its uplink; its field devices stay reachable")
        status = self.probe.status(LINE, "tank-1")
        node, old_pod = status["nodeName"], status["podName"]
        device = self.site.device("tank-io")
        device.writes.clear()
        book = PodAddressBook(self.site.api, "app.kubernetes.io/instance=tank-1")
        book.refresh()
        epoch = status["lock"]["epoch"]
        self.say(f"tank-1 on {node} (pod {old_pod}, epoch {epoch}); cutting {node} off the API server")
        since = time.monotonic()
        self.site.partition(node)
        moved = self.probe.wait(
            lambda: (
                (s := self.probe.status(LINE, "tank-1")).get("podName") != old_pod
                and s.get("phase") == "Running"
                and (e := self.probe.endpoints(LINE, "tank-1")) is not None
                and e.pod == s["podName"]
                and s
            ),
            120,
            "tank-1 serving on another node",
        )
        self.say(
            f"tank-1 serving on {moved['nodeName']} {time.monotonic() - since:.1f}s later "
            f"(pod {moved['podName']}, epoch {moved['lock']['epoch']})"
        )
        fenced = self.probe.wait(
            lambda: self.probe.metric(LINE, old_pod, "shopfloor_vplc_fenced") == 1.0, 20, "the old runtime fenced"
        )
        self.say(f"the cut-off runtime {old_pod} still runs and scans; shopfloor_vplc_fenced = {fenced:.0f}")
        self.probe.wait(lambda: time.monotonic() - since >= seconds, seconds + 5, "the partition to last")
        self.site.heal(node)
        assert self.site.runner is not None
        self.probe.wait(
            lambda: not [w for w in self.site.runner.workloads() if w["pod"] == old_pod],  # type: ignore[union-attr]
            60,
            "the old runtime removed after the heal",
        )
        book.refresh()
        writes = list(device.writes)
        writers = [writer.rsplit("/", 1)[-1] for writer in writers_in_order(writes, book)]
        self.say(f"partition healed after {seconds:.0f}s; Lease holder {self.probe.lease(LINE, 'tank-1')['holder']}")
        self.say(f"tank-io saw {len(writes)} writes, from {' then '.join(writers) or 'nobody'}")
        self.say(f"overlapping writes: {len(overlaps(writes, book))}")

    # -- 6. node failure ---------------------------------------------------------------------------------------

    def node_failure(self) -> None:
        self.step("Node failure: the real-time node under tank-1 loses power")
        status = self.probe.status(LINE, "tank-1")
        node = status["nodeName"]
        fills = self.probe.read_modbus(LINE, "tank-1", "inputRegisters", 2, "UDINT")
        self.say(f"tank-1 on {node}, fills so far {fills}; cutting {node}'s power")
        since = time.monotonic()
        self.site.power_off(node)
        moved = self.probe.wait(
            lambda: (
                (s := self.probe.status(LINE, "tank-1")).get("nodeName") not in ("", node)
                and s.get("phase") == "Running"
                and self.probe.endpoints(LINE, "tank-1")
                and s
            ),
            120,
            "tank-1 running on another node",
        )
        self.say(f"tank-1 moved to {moved['nodeName']} and serving again {time.monotonic() - since:.1f}s later")
        fills_after = self.probe.wait(
            lambda: self.probe.read_modbus(LINE, "tank-1", "inputRegisters", 2, "UDINT"), 20, "tank-1 fills"
        )
        self.say(f"retained Fills after the move: {fills_after} (was {fills})")
        for event in self.probe.events(LINE, "tank-1")[-4:]:
            self.say(f"event {event}")
        self.site.power_on(node)

    # -- 7. hot standby ----------------------------------------------------------------------------------------

    def hot_standby(self) -> None:
        self.step("Hot standby: tank-1 gets a second runtime that follows its state; then the primary loses power")
        realtime = [node.name for node in self.site.plane.options.nodes if node.realtime]
        self.probe.wait(lambda: all(self.site.plane.node_ready(n) for n in realtime), 90, "the real-time nodes Ready")
        self.probe.patch_spec(LINE, "tank-1", {"redundancy": {"mode": "HotStandby"}})

        def pair() -> dict[str, Any] | None:
            status = self.probe.status(LINE, "tank-1")
            redundancy = status.get("redundancy") or {}
            in_sync = redundancy.get("inSync") and status.get("phase") == "Running"
            return {**status, **redundancy} if in_sync else None

        ready = self.probe.wait(pair, 120, "tank-1's standby in sync")
        primary, standby = ready["podName"], ready["standby"]
        self.say(f"primary {primary} on {ready['nodeName']}, standby {standby} on {ready['standbyNode']}, in sync")
        device = self.site.device("tank-io")
        book = PodAddressBook(self.site.api, "app.kubernetes.io/instance=tank-1")
        book.refresh()
        mark = len(device.writes)
        fills = self.probe.read_modbus(LINE, "tank-1", "inputRegisters", 2, "UDINT")
        self.say(f"fills so far {fills}; cutting {ready['nodeName']}'s power")
        cut_ns = time.monotonic_ns()
        self.site.power_off(ready["nodeName"])

        def standby_wrote() -> int | None:
            mine = (w for w in device.writes[mark:] if w.monotonic_ns > cut_ns and book(w.peer_host).endswith(standby))
            return next((w.monotonic_ns for w in mine), None)

        first = self.probe.wait(standby_wrote, 30, "the standby driving tank-io")
        self.probe.wait(lambda: self.probe.status(LINE, "tank-1").get("podName") == standby, 30, "status")
        fills_after = self.probe.read_modbus(LINE, "tank-1", "inputRegisters", 2, "UDINT")
        writes = device.writes[mark:]
        self.say(f"the standby {standby} drove tank-io {(first - cut_ns) / 1e6:.0f} ms after the power cut")
        self.say(f"Fills {fills} -> {fills_after} (the state it followed, not a restart); "
                 f"overlapping writes: {len(overlaps(writes, book))}")  # fmt: skip
        self.site.power_on(ready["nodeName"])


async def read_opcua(port: int, workdir: Path, names: list[str]) -> dict[str, Any]:
    from asyncua import Client

    cert, key = opcua_application_certificate("urn:shopfloor:demo-client", ("localhost", socket.gethostname()))
    cert_file, key_file = workdir / "demo-client-cert.pem", workdir / "demo-client-key.pem"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    opcua = Client(f"opc.tcp://127.0.0.1:{port}", timeout=5)
    opcua.application_uri = "urn:shopfloor:demo-client"
    await opcua.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert_file},{key_file}")
    async with opcua:
        namespace = await opcua.get_namespace_index("urn:shopfloor:vplc")
        values: dict[str, Any] = {}
        objects = opcua.nodes.objects
        for child in await objects.get_children():
            for variable in await child.get_children():
                browse_name = (await variable.read_browse_name()).Name
                if browse_name in names:
                    values[browse_name] = await variable.read_value()
        _ = namespace
        return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--once", action="store_true", default=os.environ.get("ONCE") == "1")
    args = parser.parse_args(argv)
    # The plant's devices and the demo's clients run in this process; their libraries' chatter is not the story
    # (the workloads' own logs are in the site's work directory).
    for library in ("pymodbus", "asyncua"):
        logging.getLogger(library).setLevel(logging.CRITICAL)
    print("Shopfloor demo: a production line on a simulated edge site, all on this machine.")
    if missing():
        print("First run: building the control plane from Go modules (about 8 minutes on 2 cores; later runs: none).")
    try:
        ensure_binaries()
    except BuildError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    events_log: list[str] = []
    site = EdgeSite(SiteOptions(on_event=events_log.append))
    print("Starting the site: control plane, 4 simulated edge nodes, operator, MQTT broker, plant simulator ...")
    started = time.monotonic()
    try:
        site.start()
        story = Story(site, site.workdir / "site.log")
        print(f"site up in {time.monotonic() - started:.1f}s")
        assert site.broker is not None
        with SparkplugWatch(site.broker.port, "plant-a") as watch:
            story.apply_line()
            story.placement()
            story.live_values()
            story.opcua_values()
            story.sparkplug(watch)
            story.online_change()
            story.bad_program()
            story.partition()
            story.node_failure()
            story.hot_standby()
        print(f"\nThe story took {time.monotonic() - story.started:.0f}s.")
        if not args.once:
            print("The site stays up; Ctrl-C stops everything.")
            while not stop.is_set():
                time.sleep(1)
        return 0
    except KeyboardInterrupt:
        return 0
    except Exception as error:
        print(f"\nDEMO FAILED: {error}", file=sys.stderr)
        print("last site events:\n  " + "\n  ".join(events_log[-15:]), file=sys.stderr)
        if site.operator is not None:
            print(f"operator log tail:\n{site.operator.log_tail(30)}", file=sys.stderr)
        if site._api is not None:
            probe = SiteProbe(site)
            for name in ("tank-1", "conveyor-1"):
                print(f"{name} status: {probe.status(LINE, name)}", file=sys.stderr)
        if site.runner is not None:
            for key, tail in site.runner.log_tails(10).items():
                print(f"{key} log tail:\n{tail}", file=sys.stderr)
        return 1
    finally:
        print("Stopping the site ...", flush=True)
        site.stop()


if __name__ == "__main__":
    sys.exit(main())
