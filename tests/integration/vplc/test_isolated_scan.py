"""The runtime with its scan in a process of its own: the same behaviour as in-process, seen from outside."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shopfloor_vplc.image import PlcState
from tests.integration.vplc.conftest import RemoteIO
from tests.integration.vplc.runtime_support import TANK, field_device, modbus_client, running_plc
from tests.support.waiting import async_wait_for

# A hang fails this test with a traceback instead of stalling the suite.
pytestmark = pytest.mark.timeout(90)


def when(predicate: object) -> object:
    async def check() -> bool:
        return bool(predicate())  # type: ignore[operator]

    return check


async def test_modbus_writes_online_change_and_retain(tmp_path: Path) -> None:
    async with running_plc(tmp_path, isolated_scan=True) as runtime, modbus_client(runtime) as client:
        assert runtime.engine.state is PlcState.RUNNING
        assert not (await client.write_register(0, 77)).isError()
        await async_wait_for(when(lambda: runtime.engine.snapshot.values["Setpoint"] == 77), timeout=15)
        assert not (await client.write_registers(4, [0, 5])).isError()  # Starts (RETAIN)
        await async_wait_for(when(lambda: runtime.engine.retained_values.get("Starts") == 5), timeout=15)
        outcome = await runtime.apply_source(TANK.replace("Count := Count + 1;", "Count := Count + 2;"))
        assert outcome.accepted, outcome.message()
        assert runtime.engine.program.revision == outcome.revision
        assert runtime.engine.snapshot.values["Setpoint"] == 77
        scans = runtime.metrics.scans._value.get()
        await async_wait_for(when(lambda: runtime.metrics.scans._value.get() > scans + 5), timeout=15)
    assert '"Starts": 5' in (tmp_path / "mixer-1.retain.json").read_text()


async def test_closed_loop_and_watchdog_safe_state(tmp_path: Path, remote_io: RemoteIO) -> None:
    io = {"modbus": {"map": [{"variable": "Hang", "table": "coils", "address": 1}]}}
    io["fieldDevices"] = [field_device(remote_io.port)]
    async with (
        running_plc(tmp_path, isolated_scan=True, io=io, watchdog="40ms") as runtime,
        modbus_client(runtime) as client,
    ):
        await remote_io.set_register(0, 900)
        await async_wait_for(lambda: remote_io.coil(0), timeout=15, what="pump on through the scan process")
        await client.write_coil(1, True)

        async def pump_off() -> bool:
            return not await remote_io.coil(0)

        await async_wait_for(pump_off, timeout=15, what="safe state on the device")
        await async_wait_for(when(lambda: runtime.engine.state is PlcState.FAULTED), timeout=15)
        assert "watchdog" in runtime.engine.fault
        await asyncio.sleep(0)
