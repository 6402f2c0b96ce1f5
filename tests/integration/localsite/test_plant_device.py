"""A plant device answers a real Modbus client with the process model's values and drives its actuators."""

from __future__ import annotations

from pymodbus.client import AsyncModbusTcpClient

from shopfloor_localsite.plant.plant import Plant
from tests.support.waiting import async_wait_for


async def test_tank_device_closes_the_loop_over_modbus() -> None:
    plant = Plant()
    plant.tank.level = 50.0
    await plant.start()
    device = plant.devices["tank-io"]
    client = AsyncModbusTcpClient(device.host, port=device.port)
    try:
        assert await client.connect()
        level = await client.read_input_registers(0, count=1, device_id=1)
        assert abs(level.registers[0] - 500) <= 5
        await client.write_coil(0, True, device_id=1)
        assert plant.tank.valve_open

        async def level_rose() -> bool:
            reading = await client.read_input_registers(0, count=1, device_id=1)
            return bool(reading.registers[0] >= 520)

        await async_wait_for(level_rose, timeout=10, what="tank level rising with the valve open")
        switches = await client.read_discrete_inputs(0, count=2, device_id=1)
        assert switches.bits[:2] == [False, False]
        unmapped = await client.read_holding_registers(100, count=1, device_id=1)
        assert unmapped.isError()
    finally:
        client.close()
        await plant.stop()


async def test_a_device_that_stops_refuses_connections_and_comes_back_on_the_same_port() -> None:
    plant = Plant()
    await plant.start()
    device = plant.devices["conveyor-io"]
    port = device.port
    await device.stop()
    client = AsyncModbusTcpClient(device.host, port=port, retries=0, timeout=1)
    try:
        assert not await client.connect()
        await device.start()
        assert device.port == port
        assert await client.connect()
        eyes = await client.read_discrete_inputs(0, count=2, device_id=1)
        assert not eyes.isError()
    finally:
        client.close()
        await plant.stop()
