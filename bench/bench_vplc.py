"""vPLC runtime benchmarks, each next to the plain thing in the same run:

1. scan wake-up lateness p50/p99/max at 10 ms and 1 ms cycles vs a bare clock_nanosleep loop (goal: p99 within 2x
   of the bare loop, zero drift);
2. Modbus read-holding-registers throughput with 1 and 8 clients vs a plain pymodbus server (goal: >= 0.8x), with
   the scan's p99 lateness under that load vs unloaded (goal: within 1.5x);
3. OPC UA: 1,000 variables changing every 100 ms, a client subscribed to all at a 100 ms publishing interval:
   notifications delivered vs a plain asyncua server (goal: >= 0.9x).

Clients run in a separate process so they do not share the server's interpreter. As in a pod with one exclusive
core, the servers (plain and ours) are pinned to one CPU and the clients to the other.
Run: .venv/bin/python bench/bench_vplc.py (QUICK=1 shortens every phase).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from asyncua import Client, Server, ua
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from shopfloor_st import compile_source
from shopfloor_vplc import clock
from shopfloor_vplc.engine import EngineConfig, EngineListener, ScanEngine
from shopfloor_vplc.metrics import RuntimeMetrics
from shopfloor_vplc.plc_file import from_manifest_text
from shopfloor_vplc.realtime import set_fifo_priority
from shopfloor_vplc.runtime import PlcRuntime, RuntimeOptions

QUICK = os.environ.get("QUICK") == "1"
LATENCY_SECONDS = 1.0 if QUICK else 3.0
LOAD_SECONDS = 1.5 if QUICK else 3.0
OPCUA_SECONDS = 2.0 if QUICK else 5.0
FIFO_PRIORITY = 50
ROUNDS = 1 if QUICK else 3

SCAN_PROGRAM = """PROGRAM Main
VAR
  Count : DINT; Level : INT; Pump : BOOL; Ratio : REAL := 0.5; T : TON;
  R0 : INT; R1 : INT; R2 : INT; R3 : INT; R4 : INT; R5 : INT; R6 : INT; R7 : INT; R8 : INT; R9 : INT;
END_VAR
Count := Count + 1;
Level := DINT_TO_INT(Count MOD 1000);
Pump := Level > 500;
Ratio := Ratio * 0.5 + 0.25;
T(IN := Pump, PT := T#1s);
R0 := Level; R1 := Level + 1; R2 := Level + 2; R3 := Level + 3; R4 := Level + 4;
R5 := Level + 5; R6 := Level + 6; R7 := Level + 7; R8 := Level + 8; R9 := Level + 9;
END_PROGRAM
"""


def percentiles(samples_ns: list[int]) -> tuple[float, float, float]:
    """p50, p99, max in microseconds."""
    ordered = sorted(samples_ns)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50 / 1e3, p99 / 1e3, ordered[-1] / 1e3


def fmt(p: tuple[float, float, float]) -> str:
    return f"p50 {p[0]:7.1f} us  p99 {p[1]:7.1f} us  max {p[2]:8.1f} us"


# -- 1. wake-up lateness --------------------------------------------------------------------------------------------
def bare_loop(period_ns: int, seconds: float, priority: int) -> list[int]:
    lateness: list[int] = []

    def run() -> None:
        if priority:
            set_fifo_priority(priority)
        deadline = clock.now_ns() + period_ns
        end = deadline + int(seconds * 1e9)
        while deadline < end:
            clock.sleep_until(deadline)
            lateness.append(clock.now_ns() - deadline)
            deadline += period_ns

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return lateness


class Recorder(EngineListener):
    def __init__(self, forward: EngineListener | None = None) -> None:
        self.lateness: list[int] = []
        self.durations: list[int] = []
        self.overruns = 0
        self.forward = forward or EngineListener()

    def scan_completed(self, lateness_ns: int, duration_ns: int) -> None:
        self.lateness.append(lateness_ns)
        self.durations.append(duration_ns)
        self.forward.scan_completed(lateness_ns, duration_ns)

    def overrun(self, missed_cycles: int) -> None:
        self.overruns += missed_cycles

    def state_changed(self, *args: Any) -> None:
        self.forward.state_changed(*args)


def engine_lateness(period_ns: int, seconds: float, priority: int) -> Recorder:
    program = compile_source(SCAN_PROGRAM, "bench.st")
    recorder = Recorder()
    config = EngineConfig(
        cycle_ns=period_ns, watchdog_ns=period_ns * 50, published=("Count", "Level", "Pump"), realtime_priority=priority
    )
    engine = ScanEngine(program, config, listener=recorder)
    engine.start()
    time.sleep(seconds)
    engine.stop()
    return recorder


def drift_us(lateness: list[int]) -> float:
    """Median lateness of the last tenth minus that of the first: a loop that drifts grows it."""
    tenth = max(1, len(lateness) // 10)
    return (statistics.median(lateness[-tenth:]) - statistics.median(lateness[:tenth])) / 1e3


def bench_lateness() -> list[str]:
    lines = []
    fifo_ok, _ = set_fifo_priority_probe()
    modes = [("normal", 0)] + ([("SCHED_FIFO", FIFO_PRIORITY)] if fifo_ok else [])
    for label, priority in modes:
        for period_ms in (10, 1):
            period = period_ms * 1_000_000
            bare = percentiles(bare_loop(period, LATENCY_SECONDS, priority))
            recorder = engine_lateness(period, LATENCY_SECONDS, priority)
            scan = percentiles(recorder.lateness)
            duration = percentiles(recorder.durations)
            lines.append(f"lateness {period_ms:>2} ms {label:<10} bare loop: {fmt(bare)}")
            lines.append(
                f"lateness {period_ms:>2} ms {label:<10} scan:      {fmt(scan)}  p99 ratio {scan[1] / bare[1]:.2f}x  "
                f"drift {drift_us(recorder.lateness):+.1f} us  overruns {recorder.overruns}  "
                f"scan duration p50 {duration[0]:.1f} us"
            )
    return lines


def set_fifo_priority_probe() -> tuple[bool, str]:
    result: list[tuple[bool, str]] = []
    thread = threading.Thread(target=lambda: result.append(set_fifo_priority(FIFO_PRIORITY)))
    thread.start()
    thread.join()
    return result[0]


# -- 2. Modbus throughput -------------------------------------------------------------------------------------------
SERVER_CPU, CLIENT_CPU = 1, 0


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})


def modbus_client_process(port: int, clients: int, seconds: float, results: Any) -> None:
    pin(CLIENT_CPU)

    async def one(stop_at: float) -> int:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
        await client.connect()
        done = 0
        while time.monotonic() < stop_at:
            response = await client.read_holding_registers(0, count=10)
            if not response.isError():
                done += 1
        client.close()
        return done

    async def main() -> int:
        stop_at = time.monotonic() + seconds
        return sum(await asyncio.gather(*(one(stop_at) for _ in range(clients))))

    results.put(asyncio.run(main()))


async def in_client_process(target: Callable[..., None], *args: Any) -> float:
    """Run `target(*args, results)` in a fresh process (off this event loop) and return what it put."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=target, args=(*args, results))
    process.start()
    await asyncio.to_thread(process.join)
    return float(results.get())


async def measure_modbus(port: int, clients: int) -> float:
    return await in_client_process(modbus_client_process, port, clients, LOAD_SECONDS) / LOAD_SECONDS


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def runtime_for(manifest_spec: dict[str, Any], source: str, isolated_scan: bool = True) -> PlcRuntime:
    import yaml

    document = {"apiVersion": "shopfloor.io/v1alpha1", "kind": "VirtualPLC", "metadata": {"name": "bench"}}
    document["spec"] = {"program": {"source": source}, **manifest_spec}
    plc = from_manifest_text(yaml.safe_dump(document), "bench.yaml")
    program = compile_source(plc.source, "bench.st")
    options = RuntimeOptions(
        host="127.0.0.1", modbus_port=free_port(), opcua_port=free_port(), http_port=None, isolated_scan=isolated_scan
    )
    return PlcRuntime(plc.name, plc.spec, program, options)


async def bench_modbus() -> list[str]:
    """Plain and vPLC servers (scan in-process, and scan in its own process) run side by side; measurements
    alternate (ROUNDS each, medians) so that load from elsewhere on the machine hits all alike."""
    device = SimDevice(1, simdata=[SimData(0, count=10, values=0, datatype=DataType.REGISTERS)])
    plain_port = free_port()
    plain = ModbusTcpServer(device, address=("127.0.0.1", plain_port))
    await plain.serve_forever(background=True)

    mapping = [{"variable": f"R{i}", "table": "holdingRegisters", "address": i} for i in range(10)]
    priority = FIFO_PRIORITY if set_fifo_priority_probe()[0] else 0
    spec = {"cycleTime": "10ms", "realtimePriority": priority, "io": {"modbus": {"map": mapping}}}
    spec["resources"] = {"cpus": 1}
    variants: dict[str, tuple[PlcRuntime, Recorder]] = {}
    for label, isolated in (("vPLC", False), ("vPLC isolated scan", True)):
        runtime = runtime_for(spec, SCAN_PROGRAM, isolated_scan=isolated)
        recorder = Recorder(RuntimeMetrics())
        runtime.engine.listener = recorder
        await runtime.start()
        variants[label] = (runtime, recorder)
    await asyncio.sleep(LOAD_SECONDS)
    mode = f"SCHED_FIFO {priority}" if priority else "normal scheduling"
    unloaded = {label: percentiles(recorder.lateness) for label, (_, recorder) in variants.items()}
    lines = [f"modbus  {label}: scan lateness unloaded (10 ms, {mode}): {fmt(p)}" for label, p in unloaded.items()]
    for n in (1, 8):
        plain_rates: list[float] = []
        rates: dict[str, list[float]] = {label: [] for label in variants}
        loaded: dict[str, list[int]] = {label: [] for label in variants}
        for _ in range(ROUNDS):
            plain_rates.append(await measure_modbus(plain_port, n))
            for label, (runtime, recorder) in variants.items():
                assert runtime.modbus is not None
                recorder.lateness.clear()
                rates[label].append(await measure_modbus(runtime.modbus.port, n))
                loaded[label] += recorder.lateness
        plain_rate = statistics.median(plain_rates)
        lines.append(f"modbus  {n} client{'s' if n > 1 else ' '}: plain pymodbus {plain_rate:8.0f} req/s")
        for label in variants:
            rate, p99 = statistics.median(rates[label]), percentiles(loaded[label])[1]
            lines.append(
                f"modbus  {n} client{'s' if n > 1 else ' '}: {label:<18} {rate:8.0f} req/s  ratio "
                f"{rate / plain_rate:.2f}x  scan p99 under load {p99:.1f} us ({p99 / unloaded[label][1]:.2f}x unloaded)"
            )
    for runtime, _ in variants.values():
        await runtime.shutdown()
    await plain.shutdown()
    return lines


# -- 3. OPC UA notifications ----------------------------------------------------------------------------------------
VARIABLES = 1000


def opcua_client_process(url: str, node_ids: list[str], seconds: float, results: Any) -> None:
    pin(CLIENT_CPU)

    async def main() -> int:
        count = 0

        class Handler:
            def datachange_notification(self, node: object, value: object, data: object) -> None:
                nonlocal count
                count += 1

        async with Client(url, timeout=30) as client:
            subscription = await client.create_subscription(100, Handler())
            nodes = [client.get_node(node_id) for node_id in node_ids]
            await subscription.subscribe_data_change(nodes, queuesize=1)
            await asyncio.sleep(1.0)  # the initial values arrive first; count steady-state notifications only
            count = 0
            await asyncio.sleep(seconds)
            total = count
            await subscription.delete()
            return total

    results.put(asyncio.run(main()))


async def measure_opcua(url: str, node_ids: list[str]) -> float:
    return await in_client_process(opcua_client_process, url, node_ids, OPCUA_SECONDS) / OPCUA_SECONDS


async def plain_opcua_rate() -> float:
    server = Server()
    await server.init()
    port = free_port()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/plain/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace("urn:bench:plain")
    folder = await server.nodes.objects.add_folder(ua.NodeId("Main", ns), ua.QualifiedName("Main", ns))
    nodes = [
        await folder.add_variable(ua.NodeId(f"v{i}", ns), ua.QualifiedName(f"v{i}", ns), 0, ua.VariantType.Int32)
        for i in range(VARIABLES)
    ]
    await server.start()

    async def update() -> None:
        value = 0
        next_at = time.monotonic()
        while True:
            value += 1
            for node in nodes:
                await server.write_attribute_value(node.nodeid, ua.DataValue(ua.Variant(value, ua.VariantType.Int32)))
            next_at += 0.1
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    updater = asyncio.create_task(update())
    rate = await measure_opcua(f"opc.tcp://127.0.0.1:{port}/plain/", [n.nodeid.to_string() for n in nodes])
    updater.cancel()
    await server.stop()
    return rate


async def vplc_opcua_rate() -> float:
    declarations = "\n".join(f"  v{i} : DINT;" for i in range(VARIABLES))
    body = "\n".join(f"v{i} := v{i} + 1;" for i in range(VARIABLES))
    source = f"PROGRAM Main\nVAR\n{declarations}\nEND_VAR\n{body}\nEND_PROGRAM\n"
    opcua = {"enabled": True, "securityPolicies": ["None"], "allowAnonymous": True}
    runtime = runtime_for({"cycleTime": "100ms", "io": {"modbus": {"enabled": False}, "opcua": opcua}}, source)
    await runtime.start()
    assert runtime.opcua is not None
    ns = runtime.opcua.namespace_index
    rate = await measure_opcua(runtime.opcua.endpoint, [f"ns={ns};s=v{i}" for i in range(VARIABLES)])
    await runtime.shutdown()
    return rate


async def bench_opcua() -> list[str]:
    plains, ourses = [], []
    for _ in range(max(1, ROUNDS - 1)):
        plains.append(await plain_opcua_rate())
        ourses.append(await vplc_opcua_rate())
    plain, ours = statistics.median(plains), statistics.median(ourses)
    expected = VARIABLES * 10
    return [
        f"opcua   {VARIABLES} variables, 100 ms: plain asyncua {plain:8.0f} notifications/s  vPLC {ours:8.0f} "
        f"notifications/s  ratio {ours / plain:.2f}x  (all changes: {expected}/s)"
    ]


def main() -> None:
    print(f"vPLC runtime benchmarks on {os.cpu_count()} cores{' (QUICK)' if QUICK else ''}", flush=True)
    pin(SERVER_CPU)
    sections: list[Callable[[], list[str]]] = [
        bench_lateness,
        lambda: asyncio.run(bench_modbus()),
        lambda: asyncio.run(bench_opcua()),
    ]
    for section in sections:
        for line in section():
            print(line, flush=True)


if __name__ == "__main__":
    main()
