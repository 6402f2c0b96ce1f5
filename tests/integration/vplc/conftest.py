"""A simulated remote I/O device: a real pymodbus server (coils, discrete inputs, holding and input registers) that
the PLC's I/O scanner talks to; tests set its sensors and read its actuators with a real pymodbus client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from tests.support.mosquitto import free_port


@dataclass
class RemoteIO:
    port: int
    server: ModbusTcpServer | None
    client: AsyncModbusTcpClient

    async def set_register(self, address: int, value: int) -> None:
        assert not (await self.client.write_register(address, value & 0xFFFF)).isError()

    async def coil(self, address: int) -> bool:
        response = await self.client.read_coils(address, count=1)
        assert not response.isError()
        return bool(response.bits[0])

    async def register(self, address: int) -> int:
        response = await self.client.read_holding_registers(address, count=1)
        assert not response.isError()
        return int(response.registers[0])

    async def stop(self) -> None:
        """The device goes away (power loss, cable pulled)."""
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def start(self) -> None:
        self.server = await start_device(self.port)


async def start_device(port: int) -> ModbusTcpServer:
    bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    registers = [SimData(0, count=32, values=0, datatype=DataType.REGISTERS)]
    device = SimDevice(1, simdata=(list(bits), list(bits), list(registers), list(registers)))
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    return server


@pytest.fixture
async def remote_io() -> AsyncIterator[RemoteIO]:
    port = free_port()
    server = await start_device(port)
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await client.connect()
    device = RemoteIO(port, server, client)
    yield device
    client.close()
    with contextlib.suppress(Exception):
        await device.stop()
