"""A Modbus TCP remote I/O device whose points are attributes of a process model.

Coils drive the model's actuators; discrete inputs and input registers report its sensors. The model is stepped
on real time by a background task. Built on pymodbus' SimDevice with an access hook (the datastore seam pymodbus
keeps in 4.0), so sensor values are read from the model at the moment a client asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Protocol

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from shopfloor_localsite.processes import free_port

READ_COILS, READ_DISCRETE_INPUTS, READ_INPUT_REGISTERS = 1, 2, 4
WRITE_SINGLE_COIL, WRITE_MULTIPLE_COILS = 5, 15
BLOCK_SIZE = 32


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
        self._server = ModbusTcpServer(self._device(), address=(self.host, self.port))
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
