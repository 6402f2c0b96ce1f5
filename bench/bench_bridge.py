"""Benchmark of the protocol bridge against plain pymodbus + paho-mqtt, on loopback with a real Mosquitto.

    python bench/bench_bridge.py [--tags 1000] [--poll 20ms] [--seconds 10] [--outage 30]

Scenarios, each measured for the bridge (`shopfloor-bridge run`, Sparkplug B, store-and-forward on) and for a plain
loop (pymodbus client + paho publish of the raw registers, QoS 1, nothing else) polling the same device:
  throughput  every register changes between polls; tag updates delivered per second and per CPU-second (core)
              of the process under test; end-to-end latency p50/p99 from writing a probe register at the device
              to the subscriber receiving it (includes waiting for the next poll, hence the goal: poll + 20 ms)
  outage      (bridge only, with --outage S) the broker is killed for S seconds under load and restarted; checks
              every NDATA arrives exactly once and in order (seq and a monotonically increasing counter)
Goals (issue 4): at least 5,000 tag updates/s per core; p99 within the poll interval + 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
import yaml  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from shopfloor_bridge.sparkplug.sparkplug_payload_pb2 import Payload  # noqa: E402
from tests.integration.bridge.devices import HOLDING, ModbusDevice  # noqa: E402
from tests.support.mosquitto import Mosquitto, free_port  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Subscriber:
    """Counts tag updates and times the probe register (its value encodes when the bench wrote it)."""

    def __init__(self, port: int, topic: str, decode: Any, host_id: str | None = None) -> None:
        self.updates = 0
        self.latencies: list[float] = []
        self.sent: dict[int, int] = {}  # probe value -> monotonic ns when written to the device
        self.ndata: list[tuple[int, int]] = []  # (seq, counter) per NDATA, for the outage check
        self.births = 0
        self._decode = decode
        self._lock = threading.Lock()
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        client.on_message = self._on_message

        def on_connect(c: mqtt.Client, *_: Any) -> None:
            c.subscribe(topic, qos=1)
            if host_id:  # act as the Sparkplug primary host: births wait until this subscriber is back
                c.publish(f"spBv1.0/STATE/{host_id}", b'{"online": true, "timestamp": 0}', qos=1, retain=True)

        client.on_connect = on_connect
        client.reconnect_delay_set(0.05, 0.2)
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        now = time.monotonic_ns()
        with self._lock:
            self._decode(self, message.topic, bytes(message.payload), now)

    def probe_seen(self, value: int, now: int) -> None:
        sent = self.sent.pop(value, None)
        if sent is not None:
            self.latencies.append((now - sent) / 1e6)

    def reset(self) -> None:
        with self._lock:
            self.updates = 0
            self.latencies.clear()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def decode_sparkplug(probe_alias: int, counter_alias: int) -> Any:
    def decode(sub: Subscriber, topic: str, payload: bytes, now: int) -> None:
        if "/NBIRTH/" in topic:
            sub.births += 1
            return
        if "/NDATA/" not in topic:
            return
        message = Payload.FromString(payload)
        sub.updates += len(message.metrics)
        counter = -1
        for metric in message.metrics:
            if metric.alias == probe_alias:
                sub.probe_seen(metric.int_value, now)
            elif metric.alias == counter_alias:
                counter = metric.int_value
        sub.ndata.append((message.seq, counter))

    return decode


def decode_plain(tags: int) -> Any:
    def decode(sub: Subscriber, _topic: str, payload: bytes, now: int) -> None:
        values = struct.unpack(f"<{len(payload) // 2}H", payload)
        sub.updates += len(values)
        sub.probe_seen(values[tags], now)

    return decode


def manifest(device_port: int, broker_port: int, tags: int, poll: str, host_id: str | None = None) -> dict[str, Any]:
    tag_list = [{"name": f"R{i}", "table": "holdingRegisters", "address": i, "type": "UINT"} for i in range(tags)]
    tag_list.append({"name": "Probe", "table": "holdingRegisters", "address": tags, "type": "UINT"})
    return {
        "apiVersion": "shopfloor.io/v1alpha1",
        "kind": "ProtocolBridge",
        "metadata": {"name": "bench"},
        "spec": {
            "sources": [
                {
                    "name": "dev",
                    "modbus": {
                        "endpoint": {"host": "127.0.0.1", "port": device_port},
                        "pollInterval": poll,
                        "tags": tag_list,
                    },
                }
            ],
            "sinks": {
                "mqtt": {
                    "url": f"mqtt://127.0.0.1:{broker_port}",
                    "sparkplug": {"groupId": "bench", "edgeNodeId": "bridge", "primaryHostId": host_id},
                    "buffer": {"maxBytes": "256Mi"},
                }
            },
        },
    }


async def plain_loop(device_port: int, broker_port: int, tags: int, poll: float) -> None:
    """The reference: poll the same registers with pymodbus and publish them raw with paho, QoS 1."""
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=device_port, retries=0, reconnect_delay=0)
    await client.connect()
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", broker_port)
    publisher.loop_start()
    loop = asyncio.get_running_loop()
    deadline = loop.time()
    total = tags + 1
    while True:
        registers: list[int] = []
        for start in range(0, total, 125):
            response = await client.read_holding_registers(start, count=min(125, total - start), device_id=1)
            registers += response.registers
        publisher.publish("bench/plain", struct.pack(f"<{len(registers)}H", *registers), qos=1)
        deadline += poll
        await asyncio.sleep(max(0.0, deadline - loop.time()))


class Load:
    """Changes every register between polls, and writes the probe register with a timestamped sequence number."""

    def __init__(self, device: ModbusDevice, tags: int, poll: float, subscriber: Subscriber | None = None) -> None:
        self.device = device
        self.poll = poll
        self.tags = tags
        self.subscriber = subscriber
        self.counter = 0

    async def run(self, period: float) -> None:
        probe = 0
        next_probe = time.monotonic()
        while True:
            self.counter = (self.counter + 1) % 65536
            await self.device.set(HOLDING, 0, [self.counter] * self.tags)
            if self.subscriber is not None and time.monotonic() >= next_probe:
                probe = (probe + 1) % 65536
                self.subscriber.sent[probe] = time.monotonic_ns()
                await self.device.set(HOLDING, self.tags, [probe])
                # Slower than the poll (every probe is seen) and off its grid (latencies cover every phase).
                next_probe = time.monotonic() + max(0.037, self.poll * 1.37)
            await asyncio.sleep(period)


async def measure(
    name: str, command: list[str], subscriber: Subscriber, device: ModbusDevice, args: argparse.Namespace
) -> dict[str, float]:
    load = Load(device, args.tags, args.poll_s, subscriber)
    loader = asyncio.create_task(load.run(args.poll_s / 2))
    process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await asyncio.sleep(3)  # connect, birth, warm up
        if process.returncode is not None:
            assert process.stderr is not None
            raise SystemExit(f"{name} exited with {process.returncode}: {(await process.stderr.read()).decode()}")
        subscriber.reset()
        cpu0, t0 = cpu_seconds(process.pid), time.monotonic()
        await asyncio.sleep(args.seconds)
        cpu1, t1 = cpu_seconds(process.pid), time.monotonic()
        updates, latencies = subscriber.updates, sorted(subscriber.latencies)
    finally:
        loader.cancel()
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
    elapsed, cpu = t1 - t0, max(cpu1 - cpu0, 1e-9)
    result = {
        "updates_per_s": updates / elapsed,
        "updates_per_cpu_s": updates / cpu,
        "cpu_cores": cpu / elapsed,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": latencies[max(0, math.ceil(len(latencies) * 0.99) - 1)] if latencies else float("nan"),
        "samples": len(latencies),
    }
    print(
        f"{name:8s} {result['updates_per_s']:>10,.0f} updates/s  {result['updates_per_cpu_s']:>10,.0f} per core  "
        f"cpu {result['cpu_cores']:.2f} cores  latency p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  "
        f"({result['samples']} probes)",
        flush=True,
    )
    return result


async def outage(
    args: argparse.Namespace, broker: Mosquitto, device: ModbusDevice, bridge_command: list[str], metrics_port: int
) -> None:
    """Kills the broker for args.outage seconds under load; checks exactly-once, in-order delivery."""
    alias_counter = 1  # R0 carries the load counter
    decode = decode_sparkplug(args.tags + 1, alias_counter)
    subscriber = Subscriber(broker.port, "spBv1.0/bench/#", decode, host_id="bench-host")
    load = Load(device, args.tags, args.poll_s)
    loader = asyncio.create_task(load.run(args.poll_s / 2))
    process = await asyncio.create_subprocess_exec(
        *bridge_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await asyncio.sleep(3)
        if process.returncode is not None:
            raise SystemExit(f"the bridge exited with {process.returncode}")
        broker.stop(kill=True)
        killed = time.monotonic()
        await asyncio.sleep(args.outage)
        broker.start()
        await asyncio.sleep(3)
        loader.cancel()
        await asyncio.sleep(2)
        replay_done = time.monotonic()
        published = published_ndata(metrics_port)
    finally:
        loader.cancel()
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
        subscriber.stop()
    # A poll can fall between the load's writes of two request blocks: then an NDATA lacks R0 (counter -1).
    counters = [counter for _seq, counter in subscriber.ndata if counter >= 0]
    # The counter wraps at 65536; within a run it stays far below that.
    in_order = all(b > a for a, b in itertools.pairwise(counters))
    print(
        f"outage   broker killed for {args.outage:.0f}s under load: {len(subscriber.ndata)} NDATA received, "
        f"{published} acknowledged by the broker to the bridge; counter strictly increasing (none twice, in "
        f"order): {in_order}; seq continuous per birth: {seq_continuous(subscriber)}; births: {subscriber.births}; "
        f"until replayed: {replay_done - killed:.0f}s",
        flush=True,
    )


def seq_continuous(subscriber: Subscriber) -> bool:
    """Each NDATA's seq follows the previous one (mod 256), except right after a birth (seq 1)."""
    previous: int | None = None
    for seq, _counter in subscriber.ndata:
        if previous is not None and seq != (previous + 1) % 256 and seq != 1:
            return False
        previous = seq
    return True


def published_ndata(port: int) -> int:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith('shopfloor_bridge_messages_published_total{kind="NDATA"}'):
                return int(float(line.split()[-1]))
    return -1


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--tags", type=int, default=999, help="changing registers (plus one probe register)")
    parser.add_argument("--poll", default="20ms")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--outage", type=float, default=0.0, help="also run the broker outage scenario (seconds)")
    args = parser.parse_args()
    args.poll_s = float(args.poll.removesuffix("ms")) / 1000 if args.poll.endswith("ms") else float(args.poll)
    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as tmp, Mosquitto(Path(tmp) / "broker") as broker:
        device = await ModbusDevice(size=args.tags + 10).start()
        manifest_file = Path(tmp) / "bridge.yaml"
        manifest_file.write_text(yaml.safe_dump(manifest(device.port, broker.port, args.tags, args.poll)))
        bridge_command = [
            sys.executable, "-m", "shopfloor_bridge.cli", "run", str(manifest_file), "--listen",
            f"127.0.0.1:{free_port()}", "--state-dir", str(Path(tmp) / "state"), "--log-level", "ERROR",
        ]  # fmt: skip
        plain_command = [
            sys.executable, __file__, "--plain-loop", str(device.port), str(broker.port), str(args.tags),
            str(args.poll_s),
        ]  # fmt: skip
        print(f"{args.tags + 1} tags, poll {args.poll}, every register changes between polls, {args.seconds:.0f}s")
        bridge_sub = Subscriber(broker.port, "spBv1.0/bench/#", decode_sparkplug(args.tags + 1, 1))
        bridge = await measure("bridge", bridge_command, bridge_sub, device, args)
        bridge_sub.stop()
        plain_sub = Subscriber(broker.port, "bench/plain", decode_plain(args.tags))
        plain = await measure("plain", plain_command, plain_sub, device, args)
        plain_sub.stop()
        print(
            f"ratio    bridge/plain: updates per core {bridge['updates_per_cpu_s'] / plain['updates_per_cpu_s']:.2f}, "
            f"p99 latency {bridge['p99_ms'] / plain['p99_ms']:.2f}; goals: >= 5,000 updates/s per core "
            f"({'met' if bridge['updates_per_cpu_s'] >= 5000 else 'MISSED'}), p99 <= poll + 20 ms = "
            f"{args.poll_s * 1000 + 20:.0f} ms ({'met' if bridge['p99_ms'] <= args.poll_s * 1000 + 20 else 'MISSED'})"
        )
        if args.outage > 0:
            outage_manifest = Path(tmp) / "bridge-host.yaml"
            document = manifest(device.port, broker.port, args.tags, args.poll, host_id="bench-host")
            outage_manifest.write_text(yaml.safe_dump(document))
            metrics_port = free_port()
            command = [*bridge_command[:4], str(outage_manifest), "--listen", f"127.0.0.1:{metrics_port}",
                       "--state-dir", str(Path(tmp) / "state-outage"), "--log-level", "ERROR"]  # fmt: skip
            await outage(args, broker, device, command, metrics_port)
        await device.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--plain-loop":
        device_port, broker_port, tags, poll = sys.argv[2:6]
        asyncio.run(plain_loop(int(device_port), int(broker_port), int(tags), float(poll)))
    else:
        asyncio.run(main())
