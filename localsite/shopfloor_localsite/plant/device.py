"""A Modbus TCP remote I/O device whose points are attributes of a process model.

Coils drive the model's actuators; discrete inputs and input registers report its sensors. The model is stepped
on real time by a background task. Built on pymodbus' SimDevice with an access hook (the datastore seam pymodbus
keeps in 4.0), so sensor values are read from the model at the moment a client asks.

Every write request is recorded in `writes` (see write_record.py) with the writer's connection. The SimDevice hook
does not know the connection, so the server is a ModbusTcpServer whose per-connection request handler records
the request, with the peer address of its own transport, just before pymodbus serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from shopfloor_localsite.plant.write_record import DeviceWrite
from shopfloor_localsite.processes import free_port

READ_COILS, READ_DISCRETE_INPUTS, READ_INPUT_REGISTERS = 1, 2, 4
WRITE_SINGLE_COIL, WRITE_MULTIPLE_COILS = 5, 15
WRITE_SINGLE_REGISTER, WRITE_MULTIPLE_REGISTERS, READ_WRITE_MULTIPLE_REGISTERS = 6, 16, 23
WRITE_TABLES = {
    WRITE_SINGLE_COIL: "coils",
    WRITE_MULTIPLE_COILS: "coils",
    WRITE_SINGLE_REGISTER: "holdingRegisters",
    WRITE_MULTIPLE_REGISTERS: "holdingRegisters",
    READ_WRITE_MULTIPLE_REGISTERS: "holdingRegisters",
}
BLOCK_SIZE = 32


def _write_of(pdu: ModbusPDU) -> tuple[str, int, tuple[int, ...]] | None:
    """(table, address, values) of a write request, None for anything else."""
    table = WRITE_TABLES.get(pdu.function_code)
    if table is None:
        return None
    if pdu.function_code == READ_WRITE_MULTIPLE_REGISTERS:
        registers: Any = getattr(pdu, "write_registers", [])
        return table, int(getattr(pdu, "write_address", 0)), tuple(int(v) for v in registers)
    if table == "coils":
        return table, pdu.address, tuple(int(bool(v)) for v in pdu.bits)
    return table, pdu.address, tuple(int(v) for v in pdu.registers)


class _RecordingRequestHandler(ServerRequestHandler):
    """pymodbus' handler of one client connection, recording each write request with the connection's peer."""

    def __init__(self, owner: _RecordingTcpServer) -> None:
        super().__init__(owner, owner.trace_packet, owner.trace_pdu, owner.trace_connect)
        self._record = owner.record
        self._peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Taken now: a writer that closes its connection right after a request (a process exiting) is still named.
        peer = transport.get_extra_info("peername")
        self._peer = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        super().connection_made(transport)

    async def handle_request(self) -> None:
        pdu = self.last_pdu
        if pdu is not None:
            write = _write_of(pdu)
            if write is not None:
                self._record(*self._peer, pdu.dev_id, pdu.function_code, *write)
        await super().handle_request()


class _RecordingTcpServer(ModbusTcpServer):
    def __init__(self, device: SimDevice, address: tuple[str, int], record: Callable[..., None]) -> None:
        self.record = record
        super().__init__(device, address=address)

    def callback_new_connection(self) -> _RecordingRequestHandler:
        return _RecordingRequestHandler(self)


class ProcessModel(Protocol):
    def step(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class PointMap:
    """Which model attribute each Modbus point is (0-based PDU addresses)."""

    coils: dict[int, str] = field(default_factory=dict)
    discrete_inputs: dict[int, str] = field(default_factory=dict)
    input_registers: dict[int, str] = field(default_factory=dict)


class RemoteIODevice:
    def __init__(self, name: str, model: ProcessModel, points: PointMap, unit_id: int = 1, step_seconds: float = 0.02):
        self.name = name
        self.model = model
        self.points = points
        self.unit_id = unit_id
        self.step_seconds = step_seconds
        self.host = "127.0.0.1"
        self.port = 0
        self._server: ModbusTcpServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Every write request served, in order (kept across stop/start; see clear_writes()).
        self.writes: list[DeviceWrite] = []

    def _record_write(
        self, host: str, port: int, unit_id: int, function_code: int, table: str, address: int, values: tuple[int, ...]
    ) -> None:
        self.writes.append(
            DeviceWrite(
                device=self.name,
                monotonic_ns=time.monotonic_ns(),
                wall_time=time.time(),
                peer_host=host,
                peer_port=port,
                unit_id=unit_id,
                function_code=function_code,
                table=table,
                address=address,
                values=values,
            )
        )

    def writes_since(self, mark: int) -> list[DeviceWrite]:
        """The writes after the first `mark` (take `len(device.writes)` as a mark before a test step)."""
        return list(self.writes[mark:])

    def clear_writes(self) -> None:
        self.writes.clear()

    async def _access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code in (WRITE_SINGLE_COIL, WRITE_MULTIPLE_COILS) and set_values is not None:
            for offset, value in enumerate(set_values):
                attribute = self.points.coils.get(address + offset)
                if attribute is not None:
                    setattr(self.model, attribute, bool(value))
        elif function_code == READ_DISCRETE_INPUTS:
            for point, attribute in self.points.discrete_inputs.items():
                _set_bit(registers, point - start_address, bool(getattr(self.model, attribute)))
        elif function_code == READ_INPUT_REGISTERS:
            for point, attribute in self.points.input_registers.items():
                registers[point - start_address] = int(getattr(self.model, attribute)) & 0xFFFF
        return None

    def _device(self) -> SimDevice:
        return SimDevice(
            id=self.unit_id,
            simdata=(
                [SimData(0, count=BLOCK_SIZE, datatype=DataType.BITS)],
                [SimData(0, count=BLOCK_SIZE, datatype=DataType.BITS)],
                [SimData(0, count=BLOCK_SIZE, datatype=DataType.REGISTERS)],
                [SimData(0, count=BLOCK_SIZE, datatype=DataType.REGISTERS)],
            ),
            action=self._access,
        )

    async def start(self, port: int | None = None) -> None:
        """Start serving (again, after stop(), on the same port unless told otherwise)."""
        self.port = port or self.port or free_port(self.host)
        self._server = _RecordingTcpServer(self._device(), (self.host, self.port), self._record_write)
        self._tasks = [asyncio.create_task(self._server.serve_forever()), asyncio.create_task(self._simulate())]
        await self._wait_listening()

    async def _wait_listening(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not start listening on {self.host}:{self.port}")
            await asyncio.sleep(0.02)

    async def _simulate(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.step_seconds)
            now = time.monotonic()
            self.model.step(now - last)
            last = now

    async def stop(self) -> None:
        """Stop serving: clients see the device disappear (connection refused)."""
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


def _set_bit(registers: list[int], bit: int, value: bool) -> None:
    word, offset = divmod(bit, 16)
    if value:
        registers[word] |= 1 << offset
    else:
        registers[word] &= ~(1 << offset)
