"""Hot standby against the real API server: two runtime processes of one PLC (as two pods would run them), a
field device that records every write with the writer's address, and a primary killed the way a power cut kills
it (SIGKILL: no shutdown code runs).

The standby follows the primary's whole process state, never writes while it is standby, and takes the Lease over
when the primary falls silent: its counters and timers go on from where the primary's were, and the device never
sees the two write in the same span of time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes import client
from pymodbus.client import AsyncModbusTcpClient

from shopfloor_api.runtime_contract import (
    ANNOTATION_ACTIVE_REVISION,
    ANNOTATION_STANDBY,
    ANNOTATION_STATE,
    ANNOTATION_SYNC_ENDPOINT,
    ENV_SYNC_KEY_FILE,
    SYNC_PORT,
)
from shopfloor_localsite.plant.device import PointMap, RemoteIODevice
from shopfloor_localsite.plant.write_record import overlaps, writers_in_order
from shopfloor_st import source_revision
from shopfloor_vplc.hot_standby import HELLO, NONCE, encode_frame, hello_payload, parse_endpoint, read_frame
from shopfloor_vplc.pod import RUNTIME_KEY
from tests.support.mosquitto import free_port
from tests.support.waiting import async_wait_for
from tests.unit.vplc.manifests import plc_manifest

pytestmark = pytest.mark.timeout(240)

PLC = "press-1"
CYCLE_S = 0.01
SYNC_INTERVAL_S = 0.02
SCANS_PER_SYNC = round(SYNC_INTERVAL_S / CYCLE_S)
# Count goes up by one per scan; Pump toggles every 10 scans, so the primary writes its output every 100 ms; the
# timer runs for an hour, its elapsed time is the process' age.
# Trip (a Modbus coil) divides by zero: the PLC faults, writes its safe state and waits for a new revision.
PROGRAM = """PROGRAM Main
VAR
  Count : UDINT;
  Pump : BOOL;
  Age : TON;
  AgeMs : UDINT;
  Trip : BOOL;
  Zero : UDINT;
END_VAR
IF Trip THEN
  Count := Count / Zero;
END_IF;
Count := Count + 1;
Pump := (Count MOD 20) < 10;
Age(IN := TRUE, PT := T#1H);
AgeMs := TIME_TO_UDINT(Age.ET);
END_PROGRAM
"""
MODBUS_MAP = [
    {"variable": "Count", "table": "inputRegisters", "address": 0},
    {"variable": "AgeMs", "table": "inputRegisters", "address": 2},
    {"variable": "Trip", "table": "coils", "address": 0},
]


class Valve:
    """The process behind the device: nothing to simulate, only the coil the PLC writes."""

    pump = False

    def step(self, seconds: float) -> None:
        return None


@dataclass
class Runtime:
    pod: str
    address: str  # the pod's address: its field-device connections leave from it
    modbus_port: int
    http_port: int
    sync_port: int
    process: subprocess.Popen[bytes]
    log: Path


def runtime_configmap(device_port: int, program: str = PROGRAM) -> dict[str, Any]:
    rio = {
        "name": "rio-1",
        "modbus": {"host": "127.0.0.1", "port": device_port},
        "pollInterval": "20ms",
        "outputs": [{"variable": "Pump", "table": "coils", "address": 0}],
        "onLoss": "HoldLastValue",
    }
    io = {"modbus": {"port": 5020, "map": MODBUS_MAP}, "fieldDevices": [rio]}
    manifest = plc_manifest(program, name=PLC, cycleTime="10ms", io=io, safeState={"Pump": False})
    return {"metadata": {"name": f"{PLC}-runtime"}, "data": {RUNTIME_KEY: manifest}}


@pytest.fixture
async def device() -> AsyncIterator[RemoteIODevice]:
    rio = RemoteIODevice("rio-1", Valve(), PointMap(coils={0: "pump"}))
    await rio.start()
    yield rio
    await rio.stop()


@pytest.fixture
async def runtimes() -> AsyncIterator[dict[str, Runtime]]:
    """The runtimes a test launched, by pod; stopped at the end (SIGTERM, as a kubelet would) while the device is
    still up, without blocking the event loop the device answers on."""
    started: dict[str, Runtime] = {}
    yield started
    for runtime in started.values():
        if runtime.process.poll() is None:
            runtime.process.send_signal(signal.SIGTERM)
    for runtime in started.values():
        try:
            await asyncio.to_thread(runtime.process.wait, 20)
        except subprocess.TimeoutExpired:
            runtime.process.kill()
            await asyncio.to_thread(runtime.process.wait)


async def until(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    async def check() -> bool:
        return predicate()

    await async_wait_for(check, timeout=timeout, interval=0.01, what=what)


def launch(runtimes: dict[str, Runtime], kubeconfig: Path, namespace: str, pod: str, address: str) -> Runtime:
    """Start one runtime process as a pod of the PLC would run it (the operator's environment for HotStandby)."""
    modbus_port, http_port, sync_port = free_port(), free_port(), free_port()
    # The pair's shared key, as the operator's Secret <plc>-sync would be mounted: one file for both runtimes.
    key_file = kubeconfig.parent / f"{namespace}-{PLC}-sync.key"
    if not key_file.exists():
        key_file.write_bytes(secrets.token_bytes(32))
    env = {
        **os.environ,
        "SHOPFLOOR_NAME": PLC,
        "SHOPFLOOR_NAMESPACE": namespace,
        "SHOPFLOOR_POD_NAME": pod,
        "SHOPFLOOR_POD_IP": address,
        "SHOPFLOOR_KUBECONFIG": str(kubeconfig),
        "SHOPFLOOR_BIND_HOST": "127.0.0.1",
        "SHOPFLOOR_PORT_MAP": f"5020={modbus_port},8080={http_port},{SYNC_PORT}={sync_port}",
        "SHOPFLOOR_LEASE_DURATION": "3",
        "SHOPFLOOR_REDUNDANCY": "HotStandby",
        "SHOPFLOOR_TAKEOVER_AFTER": "0.5",
        "SHOPFLOOR_SYNC_INTERVAL": str(SYNC_INTERVAL_S),
        ENV_SYNC_KEY_FILE: str(key_file),
        "PYTHONUNBUFFERED": "1",
    }
    log = Path(os.environ.get("SHOPFLOOR_TEST_LOG_DIR", str(kubeconfig.parent))) / f"{namespace}-{pod}.log"
    with log.open("wb") as out:
        command = [sys.executable, "-m", "shopfloor_vplc.cli", "run", "--in-pod"]
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    runtimes[pod] = Runtime(pod, address, modbus_port, http_port, sync_port, process, log)
    return runtimes[pod]


def lease(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    try:
        found = client.CoordinationV1Api(api).read_namespaced_lease(PLC, namespace)
    except client.ApiException:
        return {}
    return {
        "holder": found.spec.holder_identity or "",
        "epoch": found.spec.lease_transitions or 0,
        **(found.metadata.annotations or {}),
    }


async def read_u32(runtime: Runtime, address: int) -> int | None:
    """An input register pair (UDINT, high word first) from the runtime's own Modbus server."""
    modbus = AsyncModbusTcpClient("127.0.0.1", port=runtime.modbus_port, timeout=1, retries=0)
    try:
        if not await modbus.connect():
            return None
        response = await modbus.read_input_registers(address, count=2)
        if response.isError():
            return None
        high, low = response.registers
        return (high << 16) | low
    except Exception:  # not up yet, or gone
        return None
    finally:
        modbus.close()


async def readiness(runtime: Runtime) -> int | None:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(f"http://127.0.0.1:{runtime.http_port}/readyz") as response,
        ):
            return response.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None


def wrote(device: RemoteIODevice, runtime: Runtime, since: int = 0) -> bool:
    return any(w.peer_host == runtime.address for w in device.writes_since(since))


async def until_lease(api: client.ApiClient, namespace: str, what: str, **expected: Any) -> dict[str, Any]:
    async def matches() -> dict[str, Any] | None:
        found = await asyncio.to_thread(lease, api, namespace)
        return found if all(found.get(key) == value for key, value in expected.items()) else None

    result = await async_wait_for(matches, timeout=60, interval=0.02, what=what)
    assert isinstance(result, dict)
    return result


@contextlib.asynccontextmanager
async def primary_and_standby(
    kube_api: client.ApiClient, kubeconfig: Path, namespace: str, device: RemoteIODevice, runtimes: dict[str, Runtime]
) -> AsyncIterator[tuple[Runtime, Runtime]]:
    core = client.CoreV1Api(kube_api)
    client.CoordinationV1Api(kube_api).create_namespaced_lease(
        namespace, {"metadata": {"name": PLC}, "spec": {"leaseDurationSeconds": 3}}
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": f"{PLC}-retain"}})
    core.create_namespaced_config_map(namespace, runtime_configmap(device.port))
    first = launch(runtimes, kubeconfig, namespace, f"{PLC}-a", "127.0.31.1")
    await until_lease(kube_api, namespace, "the first runtime holding the Lease", holder=first.pod)
    await until(lambda: wrote(device, first), "the primary writing")
    second = launch(runtimes, kubeconfig, namespace, f"{PLC}-b", "127.0.32.1")
    await until_lease(kube_api, namespace, "the standby in sync", **{ANNOTATION_STANDBY: second.pod})
    yield first, second


async def test_power_loss_of_the_primary_the_standby_takes_over_with_its_state_and_one_writer(
    kube_api: client.ApiClient, kubeconfig: Path, namespace: str, device: RemoteIODevice, runtimes: dict[str, Runtime]
) -> None:
    async with primary_and_standby(kube_api, kubeconfig, namespace, device, runtimes) as (primary, standby):
        epoch = (await asyncio.to_thread(lease, kube_api, namespace))["epoch"]
        assert await readiness(primary) == 200
        assert await readiness(standby) == 503, "a standby is not Ready: a Service routes to the primary only"
        # The standby serves the primary's state (mirrored), not its own: it started later, and executes nothing.
        mirrored = await async_wait_for(lambda: read_u32(standby, 0), timeout=20, what="the standby's Count")
        assert isinstance(mirrored, int) and mirrored > 0
        refused = AsyncModbusTcpClient("127.0.0.1", port=standby.modbus_port, timeout=2, retries=0)
        assert await refused.connect()
        assert (await refused.write_coil(0, True)).isError(), "a standby refuses client writes"
        refused.close()
        assert not wrote(device, standby), "a standby never writes its field outputs"

        count_before = await read_u32(primary, 0)
        age_before = await read_u32(primary, 2)
        read_at = time.monotonic()
        assert count_before is not None and age_before is not None
        primary.process.send_signal(signal.SIGKILL)  # a power cut: no shutdown code, no release, no safe state
        killed_at = time.monotonic()
        mark = len(device.writes)
        taken = await until_lease(kube_api, namespace, "the standby holding the Lease", holder=standby.pod)
        took_over_s = time.monotonic() - killed_at
        await until(lambda: wrote(device, standby, mark), "the standby writing its outputs")
        first_write_s = time.monotonic() - killed_at
        assert taken["epoch"] == epoch + 1, "the fencing epoch counts the new holder"

        # At the takeover the standby holds the newest image it received: at most one sync interval (2 scans) and
        # the scan in flight behind the primary's last state, never a reset.
        at_takeover = await read_u32(standby, 0)
        assert at_takeover is not None and at_takeover >= count_before - SCANS_PER_SYNC - 1

        async def scanned_since() -> tuple[int, int] | None:
            count, age = await read_u32(standby, 0), await read_u32(standby, 2)
            return (count, age) if count is not None and age is not None and count > at_takeover else None

        scanned = await async_wait_for(scanned_since, timeout=20, interval=0.01, what="the standby scanning")
        assert isinstance(scanned, tuple)
        count_after, age_after = scanned
        elapsed_ms = (time.monotonic() - read_at) * 1000
        # Bumpless: the counter goes on from the primary's value (a cold start would count from 0) and the timer
        # from the primary's elapsed time, neither jumping ahead of the time that passed.
        assert count_before - SCANS_PER_SYNC - 1 <= count_after <= count_before + elapsed_ms / (CYCLE_S * 1000) + 5
        assert age_after <= age_before + elapsed_ms + 50
        assert age_after >= age_before + elapsed_ms - 1500, "the timer kept counting across the takeover"
        assert await readiness(standby) == 200

        holder_of = {primary.address: primary.pod, standby.address: standby.pod}.get
        writers = writers_in_order(device.writes, lambda host: holder_of(host) or host)
        overlapping = overlaps(device.writes, lambda host: holder_of(host) or host)
        print(
            f"hot standby, primary killed: Lease taken over after {took_over_s * 1000:.0f} ms, first field write "
            f"after {first_write_s * 1000:.0f} ms; Count {count_before} -> {count_after}, timer {age_before} -> "
            f"{age_after} ms over {elapsed_ms:.0f} ms; overlapping writes: {len(overlapping)}"
        )
        assert writers == [primary.pod, standby.pod], writers
        assert not overlapping, overlapping[:5]


async def test_a_lost_standby_holds_the_primary_back_only_until_the_lease_no_longer_names_it(
    kube_api: client.ApiClient, kubeconfig: Path, namespace: str, device: RemoteIODevice, runtimes: dict[str, Runtime]
) -> None:
    async with primary_and_standby(kube_api, kubeconfig, namespace, device, runtimes) as (primary, standby):
        standby.process.send_signal(signal.SIGKILL)
        unnamed = await until_lease(kube_api, namespace, "the Lease naming no standby", **{ANNOTATION_STANDBY: ""})
        assert unnamed["holder"] == primary.pod
        mark = len(device.writes)
        await until(lambda: wrote(device, primary, mark), "the primary driving on alone")
        # A new standby (the pod the operator would create) gets in sync with the running primary.
        replacement = launch(runtimes, kubeconfig, namespace, f"{PLC}-c", "127.0.33.1")
        await until_lease(kube_api, namespace, "the new standby in sync", **{ANNOTATION_STANDBY: replacement.pod})
        # A clean stop of the primary (its pod deleted) is a switchover: the Lease and the newest state go to the
        # standby by name, no safe state in between.
        epoch = (await asyncio.to_thread(lease, kube_api, namespace))["epoch"]
        primary.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        mark = len(device.writes)
        handed = await until_lease(kube_api, namespace, "the standby holding the Lease", holder=replacement.pod)
        await until(lambda: wrote(device, replacement, mark), "the new primary writing its outputs")
        switched_s = time.monotonic() - stopped_at
        assert handed["epoch"] == epoch + 1
        assert await asyncio.to_thread(primary.process.wait, 30) == 0
        # The safe state (Pump off) would be a write of 0 from the old primary after the stop: there is none.
        last_from_old = [w for w in device.writes_since(mark) if w.peer_host == primary.address]
        assert all(w.values != (0,) for w in last_from_old), last_from_old
        count_after = await async_wait_for(lambda: read_u32(replacement, 0), timeout=20, what="Count")
        assert isinstance(count_after, int) and count_after > 0
        await until_lease(kube_api, namespace, "the new primary running", **{ANNOTATION_STATE: "Running"})
        holder_of = {primary.address: primary.pod, replacement.address: replacement.pod}.get
        print(f"hot standby switchover (primary stopped): the new primary wrote after {switched_s * 1000:.0f} ms")
        timeline = [(w.monotonic_ns // 1_000_000, w.peer_host, w.values) for w in device.writes_since(mark - 5)]
        assert not overlaps(device.writes, lambda host: holder_of(host) or host), timeline


async def rogue_hello(endpoint: tuple[str, int], payload: Callable[[bytes], bytes]) -> bytes:
    """Connect to the sync port as a peer without the key would, send the hello `payload(nonce)` and return all the
    primary sent after its nonce until it closed the connection."""
    reader, writer = await asyncio.open_connection(*endpoint)
    try:
        kind, nonce = await asyncio.wait_for(read_frame(reader), 5)
        assert kind == NONCE
        writer.write(encode_frame(HELLO, payload(nonce)))
        try:
            return await asyncio.wait_for(reader.read(), 10)
        except ConnectionResetError:
            return b""
    finally:
        writer.close()


async def test_a_peer_without_the_key_naming_the_standby_is_refused_and_the_standby_stays_in_sync(
    kube_api: client.ApiClient, kubeconfig: Path, namespace: str, device: RemoteIODevice, runtimes: dict[str, Runtime]
) -> None:
    async with primary_and_standby(kube_api, kubeconfig, namespace, device, runtimes) as (primary, standby):
        advertised = (await asyncio.to_thread(lease, kube_api, namespace))[ANNOTATION_SYNC_ENDPOINT]
        endpoint = parse_endpoint(advertised)
        assert endpoint == ("127.0.0.1", primary.sync_port), advertised
        wrong_key = secrets.token_bytes(32)
        attempts: list[Callable[[bytes], bytes]] = [
            # The hello of an unauthenticated link, and one with a mac under another key: both name the real
            # standby, which is how a rogue would have replaced it ("the newer connection wins").
            lambda nonce: json.dumps({"standby": standby.pod, "primary": primary.pod}).encode(),
            lambda nonce: hello_payload(wrong_key, nonce, secrets.token_bytes(32), standby.pod, primary.pod),
        ]
        for attempt in attempts:
            assert await rogue_hello(endpoint, attempt) == b"", "a refused peer gets nothing but the nonce"
        mark = len(device.writes)
        mirrored_before = await async_wait_for(lambda: read_u32(standby, 0), timeout=20, what="the standby's Count")
        assert isinstance(mirrored_before, int)

        async def still_in_sync() -> bool:
            # Checked on every poll: the Lease never stops naming the real standby.
            assert (await asyncio.to_thread(lease, kube_api, namespace))[ANNOTATION_STANDBY] == standby.pod
            mirrored = await read_u32(standby, 0)
            return wrote(device, primary, mark) and mirrored is not None and mirrored > mirrored_before + 50

        await async_wait_for(still_in_sync, timeout=30, interval=0.05, what="the standby following, the primary")
        log = primary.log.read_text()
        assert "state sync: refused" in log, log[-2000:]
        assert f"standby {standby.pod} disconnected" not in log, "the real standby's connection was never replaced"
        assert not wrote(device, standby), "the standby never took over: one writer"


async def test_a_faulted_primary_keeps_its_standby_and_an_online_change_reaches_both(
    kube_api: client.ApiClient, kubeconfig: Path, namespace: str, device: RemoteIODevice, runtimes: dict[str, Runtime]
) -> None:
    async with primary_and_standby(kube_api, kubeconfig, namespace, device, runtimes) as (primary, standby):
        trip = AsyncModbusTcpClient("127.0.0.1", port=primary.modbus_port, timeout=2, retries=0)
        assert await trip.connect()
        assert not (await trip.write_coil(0, True)).isError()
        trip.close()
        faulted = await until_lease(kube_api, namespace, "the primary faulted", **{ANNOTATION_STATE: "Faulted"})
        assert faulted["holder"] == primary.pod
        faulted_at = time.monotonic()

        # The faulted primary is alive and holds its Lease: its standby must not take over and drive the outputs out
        # of their safe state, and stays in sync (the primary still sends its state). Watched for four takeover
        # periods.
        async def held_while_faulted() -> bool:
            now = await asyncio.to_thread(lease, kube_api, namespace)
            assert now["holder"] == primary.pod, "the standby took over from a faulted primary"
            assert now[ANNOTATION_STANDBY] == standby.pod, "a faulted primary keeps its standby in sync"
            return time.monotonic() - faulted_at > 2.0

        await async_wait_for(held_while_faulted, timeout=30, interval=0.05, what="four takeover periods")
        assert not [w for w in device.writes if w.peer_host == standby.address]

        # The fix, as an online change: both runtimes watch the runtime ConfigMap; the primary runs again.
        fixed = PROGRAM.replace("Count := Count / Zero;", "Trip := FALSE;").replace(
            "Count := Count + 1;", "Count := Count + 3;"
        )
        core = client.CoreV1Api(kube_api)
        core.replace_namespaced_config_map(f"{PLC}-runtime", namespace, runtime_configmap(device.port, fixed))
        revision = source_revision(fixed)
        await until_lease(kube_api, namespace, "the primary running the fix", **{ANNOTATION_ACTIVE_REVISION: revision})
        await until_lease(kube_api, namespace, "the primary running", **{ANNOTATION_STATE: "Running"})
        await until_lease(kube_api, namespace, "the standby in sync again", **{ANNOTATION_STANDBY: standby.pod})

        primary.process.send_signal(signal.SIGKILL)
        taken = await until_lease(kube_api, namespace, "the standby holding the Lease", holder=standby.pod)
        assert taken[ANNOTATION_ACTIVE_REVISION] == revision, "the standby had swapped to the same revision"
        first = await async_wait_for(lambda: read_u32(standby, 0), timeout=20, what="Count")
        assert isinstance(first, int)

        async def counting_by_three() -> int | None:
            later = await read_u32(standby, 0)
            return later if later is not None and later > first else None

        later = await async_wait_for(counting_by_three, timeout=20, what="Count moving on")
        assert isinstance(later, int) and (later - first) % 3 == 0, "the standby runs the new revision"
