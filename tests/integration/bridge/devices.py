"""Plain pymodbus TCP servers as field devices: stoppable, restartable on the same port, values set from the test."""

from __future__ import annotations

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from tests.support.mosquitto import free_port

COILS, DISCRETE_INPUTS, HOLDING, INPUT = 1, 2, 3, 4


class ModbusDevice:
    def __init__(self, unit_id: int = 1, size: int = 2000) -> None:
        self.unit_id = unit_id
        self.port = free_port()
        self._size = size
        self._server: ModbusTcpServer | None = None
        # Values survive a restart, like a device that loses its network but not its memory.
        self._saved: dict[int, list[int] | list[bool]] = {}

    def _device(self) -> SimDevice:
        bits = [SimData(0, count=self._size, values=False, datatype=DataType.BITS)]
        regs = [SimData(0, count=self._size, values=0, datatype=DataType.REGISTERS)]
        return SimDevice(id=self.unit_id, simdata=(bits, list(bits), regs, list(regs)))

    async def start(self) -> ModbusDevice:
        self._server = ModbusTcpServer(self._device(), address=("127.0.0.1", self.port))
        await self._server.serve_forever(background=True)
        for table, values in self._saved.items():
            await self.set(table, 0, values)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            for table in (COILS, DISCRETE_INPUTS, HOLDING, INPUT):
                self._saved[table] = await self.get(table, 0, self._size)
            await self._server.shutdown()
            self._server = None

    async def set(self, table: int, address: int, values: list[int] | list[bool]) -> None:
        assert self._server is not None
        await self._server.context.async_setValues(self.unit_id, table, address, values)

    async def get(self, table: int, address: int, count: int = 1) -> list[int] | list[bool]:
        assert self._server is not None
        result = await self._server.context.async_getValues(self.unit_id, table, address, count)
        assert isinstance(result, list)
        return result
