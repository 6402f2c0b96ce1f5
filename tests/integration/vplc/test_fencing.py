"""Fencing: a runtime drives its field outputs and accepts client writes only while its lock permits it.

A real PlcRuntime (scan in its own process, Modbus and OPC UA servers on loopback) drives a real pymodbus field
device. The lock is a small permit whose answers the test flips (in a pod it is the LeaseLock). Writes are observed
where they matter, on the device: its action hook records every request it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from shopfloor_vplc.opcua_server import NAMESPACE_URI
from shopfloor_vplc.plc_file import from_manifest_text
from shopfloor_vplc.program import compile_program
from shopfloor_vplc.runtime import PlcRuntime, RuntimeOptions
from tests.integration.vplc.runtime_support import modbus_client
from tests.support.mosquitto import free_port
from tests.support.waiting import async_wait_for
from tests.unit.vplc.manifests import plc_manifest

# A hang fails this test with a traceback instead of stalling the suite.
pytestmark = pytest.mark.timeout(120)

WAIT_S = 15.0

# Pump toggles every 10 scans (50 ms at 5 ms) while Enable; Speed follows Setpoint and so stays put unless written.
PROGRAM = """PROGRAM Main
VAR
  LevelRaw : INT;
  Level : INT;
  Enable : BOOL := TRUE;
  Setpoint : INT := 500;
  Count : DINT;
  Toggles : DINT;
  Pump : BOOL;
  Speed : INT;
END_VAR
Count := Count + 1;
Level := LevelRaw;
IF Enable AND Count MOD 10 = 0 THEN
  Pump := NOT Pump;
  Toggles := Toggles + 1;
END_IF;
Speed := Setpoint;
END_PROGRAM
"""

SERVED_MAP = [
    {"variable": "Setpoint", "table": "holdingRegisters", "address": 0},
    {"variable": "Enable", "table": "coils", "address": 0},
    {"variable": "Count", "table": "inputRegisters", "address": 0},
    {"variable": "Toggles", "table": "inputRegisters", "address": 2},
    {"variable": "Level", "table": "inputRegisters", "address": 4},
    {"variable": "Speed", "table": "inputRegisters", "address": 5},
    {"variable": "Pump", "table": "discreteInputs", "address": 0},
]
LEVEL = 1234  # preset in the device's input register 0: the program sees it only if the scanner reads the device
PUMP_CODE, PUMP_ADDRESS = 5, 0  # write_coil
SPEED_CODE, SPEED_ADDRESS = 16, 5  # write_registers
SAFE_WRITES = [(PUMP_CODE, PUMP_ADDRESS, [False]), (SPEED_CODE, SPEED_ADDRESS, [0])]

Request = tuple[int, int, list[Any] | None]  # function code, address, values written (None for a read)


class Permit:
    """The runtime's lock as the test decides it (an OutputPermit, like the LeaseLock in a pod)."""

    def __init__(self, drive: bool, safe_state: bool) -> None:
        self.drive, self.safe_state = drive, safe_state
        self.safe_state_asked = 0

    def may_drive(self) -> bool:
        return self.drive

    def may_write_safe_state(self) -> bool:
        self.safe_state_asked += 1
        return self.safe_state


@dataclass
class FieldDevice:
    """A remote I/O device (a pymodbus server) that records every request reaching it."""

    port: int
    requests: list[Request] = field(default_factory=list)
    on_write: Callable[[], None] | None = None  # called once, while the device handles the next write
    server: ModbusTcpServer | None = None

    async def action(
        self, function_code: int, _start: int, address: int, _count: int, _registers: list[int], values: Any
    ) -> ExcCodes | None:
        written = values is not None  # pymodbus reads a coil back after writing it (function 5, no values)
        self.requests.append((function_code, address, list(values) if written else None))
        if written and self.on_write is not None:
            hook, self.on_write = self.on_write, None
            hook()
        return None

    @property
    def writes(self) -> list[Request]:
        return [request for request in self.requests if request[2] is not None]

    @property
    def reads(self) -> int:
        return sum(1 for request in self.requests if request[2] is None)

    def last_written(self, code: int, address: int, since: int = 0) -> list[Any] | None:
        values = [r[2] for r in self.writes[since:] if r[0] == code and r[1] == address]
        return values[-1] if values else None

    async def start(self) -> None:
        bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        holding = [SimData(0, count=32, values=0, datatype=DataType.REGISTERS)]
        inputs = [
            SimData(0, values=LEVEL, datatype=DataType.REGISTERS),
            SimData(1, count=31, values=0, datatype=DataType.REGISTERS),
        ]
        device = SimDevice(1, simdata=(list(bits), list(bits), holding, inputs), action=self.action)
        self.server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None


@pytest.fixture
async def device() -> AsyncIterator[FieldDevice]:
    rio = FieldDevice(free_port())
    await rio.start()
    yield rio
    await rio.stop()


@contextlib.asynccontextmanager
async def fenceable_plc(tmp_path: Path, device: FieldDevice, permit: Permit) -> AsyncIterator[PlcRuntime]:
    rio = {
        "name": "rio-1",
        "modbus": {"host": "127.0.0.1", "port": device.port},
        "pollInterval": "5ms",
        "inputs": [{"variable": "LevelRaw", "table": "inputRegisters", "address": 0}],
        "outputs": [
            {"variable": "Pump", "table": "coils", "address": PUMP_ADDRESS},
            {"variable": "Speed", "table": "holdingRegisters", "address": SPEED_ADDRESS},
        ],
        "onLoss": "Fault",
    }
    opcua = {"enabled": True, "securityPolicies": ["None"], "allowAnonymous": True, "writable": ["Setpoint"]}
    io = {"modbus": {"map": SERVED_MAP}, "opcua": opcua, "fieldDevices": [rio]}
    manifest = plc_manifest(PROGRAM, cycleTime="5ms", io=io, safeState={"Pump": False, "Speed": 0})
    plc = from_manifest_text(manifest, str(tmp_path / "mixer.yaml"))
    program = compile_program(plc.source, plc.filename, plc.spec.program.entrypoint)
    options = RuntimeOptions(
        host="127.0.0.1",
        modbus_port=free_port(),
        opcua_port=free_port(),
        http_port=free_port(),
        filename=plc.filename,
        permit=permit,
    )
    runtime = PlcRuntime(plc.name, plc.spec, program, options)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.shutdown()


def value(runtime: PlcRuntime, name: str) -> Any:
    return runtime.engine.snapshot.values.get(name)


async def until(predicate: Callable[[], object], what: str) -> None:
    async def check() -> bool:
        return bool(predicate())

    await async_wait_for(check, timeout=WAIT_S, interval=0.01, what=what)


async def toggles_pass(runtime: PlcRuntime, count: int) -> None:
    """Time and scans pass: the program switches its Pump output `count` more times (10 scans each)."""
    start, scans = value(runtime, "Toggles") or 0, value(runtime, "Count") or 0
    await until(lambda: (value(runtime, "Toggles") or 0) >= start + count, f"{count} more Pump toggles")
    assert value(runtime, "Count") >= scans + 10 * (count - 1)


def metric(runtime: PlcRuntime, name: str) -> float | None:
    return runtime.metrics.registry.get_sample_value(name)


def lock_runs_out(device: FieldDevice, permit: Permit, safe_state: bool) -> asyncio.Future[int]:
    """At the device's next write, the permit stops allowing the outputs to be driven. That write left while it
    was still allowed; the future gives the number of writes the device had seen then, itself included."""
    ran_out: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def hook() -> None:
        permit.drive, permit.safe_state = False, safe_state
        ran_out.set_result(len(device.writes))

    device.on_write = hook
    return ran_out


async def test_a_waiting_runtime_scans_and_reads_but_writes_nothing_until_permitted(
    tmp_path: Path, device: FieldDevice
) -> None:
    permit = Permit(drive=False, safe_state=False)
    async with fenceable_plc(tmp_path, device, permit) as runtime:
        await until(lambda: value(runtime, "Level") == LEVEL, "the device's input in the scan")
        reads = device.reads
        await toggles_pass(runtime, 5)
        assert device.reads > reads  # still polled
        assert device.writes == []  # the program switched Pump five times; nothing reached the device

        permit.drive = permit.safe_state = True
        await until(lambda: device.last_written(SPEED_CODE, SPEED_ADDRESS) == [500], "Speed written (unchanged)")
        seen = len(device.writes)
        await toggles_pass(runtime, 3)
        pumped = [r[2] for r in device.writes[seen:] if r[:2] == (PUMP_CODE, PUMP_ADDRESS)]
        assert len(pumped) >= 2 and all(a != b for a, b in itertools.pairwise(pumped))  # each toggle
        assert metric(runtime, "shopfloor_vplc_fenced") == 0


async def test_fenced_runtime_writes_safe_state_once_refuses_clients_and_resumes_with_the_whole_image(
    tmp_path: Path, device: FieldDevice
) -> None:
    permit = Permit(drive=True, safe_state=True)
    async with fenceable_plc(tmp_path, device, permit) as runtime, modbus_client(runtime) as client:
        assert runtime.opcua is not None
        await until(lambda: device.last_written(SPEED_CODE, SPEED_ADDRESS) == [500], "Speed on the device")
        seen = len(device.writes)
        await toggles_pass(runtime, 2)
        assert any(r[:2] == (PUMP_CODE, PUMP_ADDRESS) for r in device.writes[seen:])  # Pump follows the program

        # -- fenced: the lock ran out, the one safe-state write still may leave
        ran_out = lock_runs_out(device, permit, safe_state=True)
        async with asyncio.timeout(WAIT_S):
            mark = await ran_out
        runtime.fence("Lease not renewed in time (test)")
        await until(lambda: len(device.writes) >= mark + len(SAFE_WRITES), "safe state on the device")
        await toggles_pass(runtime, 6)
        assert device.writes[mark:] == SAFE_WRITES  # once, and nothing after while Pump kept switching
        assert metric(runtime, "shopfloor_vplc_fenced") == 1
        assert metric(runtime, "shopfloor_vplc_fencings_total") == 1

        # -- client writes refused while fenced
        response = await client.write_register(0, 77)
        assert response.isError() and response.exception_code == ExcCodes.DEVICE_BUSY
        response = await client.write_coil(0, False)
        assert response.isError() and response.exception_code == ExcCodes.DEVICE_BUSY
        async with asyncio.timeout(4 * WAIT_S), Client(runtime.opcua.endpoint, timeout=WAIT_S) as opc:
            ns = await opc.get_namespace_index(NAMESPACE_URI)
            setpoint = opc.get_node(ua.NodeId("Setpoint", ns))
            with pytest.raises(ua.UaStatusCodeError) as refused:
                await setpoint.write_value(ua.Variant(66, ua.VariantType.Int16))
            assert refused.value.code == ua.StatusCodes.BadInvalidState
            await toggles_pass(runtime, 2)  # Enable still TRUE: the coil write did not reach the program
            assert value(runtime, "Setpoint") == 500 and value(runtime, "Speed") == 500
            assert value(runtime, "Enable") is True
            assert device.writes[mark:] == SAFE_WRITES

            # -- the lock is held again: the whole output image, then client writes accepted
            permit.drive = True
            resumed = len(device.writes)
            runtime.unfence()
            await until(lambda: len(device.writes) >= resumed + 2, "the output image written afresh")
            first = device.writes[resumed : resumed + 2]
            assert {r[:2] for r in first} == {(PUMP_CODE, PUMP_ADDRESS), (SPEED_CODE, SPEED_ADDRESS)}
            assert (SPEED_CODE, SPEED_ADDRESS, [500]) in first  # Speed did not change, and is written again
            assert metric(runtime, "shopfloor_vplc_fenced") == 0
            assert metric(runtime, "shopfloor_vplc_fencings_total") == 1

            assert not (await client.write_register(0, 321)).isError()
            await until(lambda: device.last_written(SPEED_CODE, SPEED_ADDRESS) == [321], "Modbus write to the field")
            await setpoint.write_value(ua.Variant(42, ua.VariantType.Int16))
            await until(lambda: device.last_written(SPEED_CODE, SPEED_ADDRESS) == [42], "OPC UA write to the field")


async def test_a_superseded_runtime_writes_nothing_when_it_fences(tmp_path: Path, device: FieldDevice) -> None:
    permit = Permit(drive=True, safe_state=True)
    async with fenceable_plc(tmp_path, device, permit) as runtime:
        await until(lambda: device.last_written(SPEED_CODE, SPEED_ADDRESS) == [500], "Speed on the device")
        ran_out = lock_runs_out(device, permit, safe_state=False)  # another pod holds the Lease now
        async with asyncio.timeout(WAIT_S):
            mark = await ran_out
        asked = permit.safe_state_asked
        runtime.fence("Lease held by another pod (test)")
        await until(lambda: permit.safe_state_asked > asked, "the safe-state write considered")
        await toggles_pass(runtime, 6)
        assert device.writes[mark:] == []
        assert metric(runtime, "shopfloor_vplc_fenced") == 1
