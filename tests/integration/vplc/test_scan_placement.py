"""Where the scan runs: in a process of its own (the default, used by the other runtime tests) or in the servers'
process. Both behave the same seen from outside; a scan process that dies faults the PLC into its safe state."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from shopfloor_vplc.image import PlcState
from shopfloor_vplc.remote_engine import RemoteEngine
from shopfloor_vplc.runtime import PlcRuntime
from tests.integration.vplc.conftest import RemoteIO
from tests.integration.vplc.runtime_support import TANK, field_device, modbus_client, running_plc
from tests.support.waiting import async_wait_for

# A hang fails this test with a traceback instead of stalling the suite.
pytestmark = pytest.mark.timeout(90)


def when(predicate: object) -> object:
    async def check() -> bool:
        return bool(predicate())  # type: ignore[operator]

    return check


def scans(runtime: PlcRuntime) -> float:
    return runtime.metrics.registry.get_sample_value("shopfloor_vplc_scans_total") or 0.0


@pytest.mark.parametrize("isolated", [True, False], ids=["own-process", "in-process"])
async def test_modbus_writes_online_change_and_retain(tmp_path: Path, isolated: bool) -> None:
    async with running_plc(tmp_path, isolated_scan=isolated) as runtime, modbus_client(runtime) as client:
        assert runtime.engine.state is PlcState.RUNNING
        assert not (await client.write_register(0, 77)).isError()
        await async_wait_for(when(lambda: runtime.engine.snapshot.values["Setpoint"] == 77), timeout=15)
        assert not (await client.write_registers(4, [0, 5])).isError()  # Starts (RETAIN)
        await async_wait_for(when(lambda: runtime.engine.retained_values.get("Starts") == 5), timeout=15)
        outcome = await runtime.apply_source(TANK.replace("Count := Count + 1;", "Count := Count + 2;"))
        assert outcome.accepted, outcome.message()
        assert runtime.engine.program.revision == outcome.revision
        assert runtime.engine.snapshot.values["Setpoint"] == 77
        before = scans(runtime)
        await async_wait_for(when(lambda: scans(runtime) > before + 5), timeout=15)
    assert '"Starts": 5' in (tmp_path / "mixer-1.retain.json").read_text()


@pytest.mark.parametrize("isolated", [True, False], ids=["own-process", "in-process"])
async def test_closed_loop_and_watchdog_safe_state(tmp_path: Path, remote_io: RemoteIO, isolated: bool) -> None:
    io = {"modbus": {"map": [{"variable": "Hang", "table": "coils", "address": 1}]}}
    io["fieldDevices"] = [field_device(remote_io.port)]
    async with (
        running_plc(tmp_path, isolated_scan=isolated, io=io, watchdog="40ms") as runtime,
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


async def test_a_dead_scan_process_faults_into_the_safe_state(tmp_path: Path, remote_io: RemoteIO) -> None:
    async with running_plc(tmp_path, io={"fieldDevices": [field_device(remote_io.port)]}) as runtime:
        await remote_io.set_register(0, 900)
        await async_wait_for(lambda: remote_io.coil(0), timeout=15, what="pump on")
        assert isinstance(runtime.engine, RemoteEngine) and runtime.engine.process is not None
        os.kill(runtime.engine.process.pid, signal.SIGKILL)

        async def pump_off() -> bool:
            return not await remote_io.coil(0)

        await async_wait_for(pump_off, timeout=15, what="safe state after the scan process died")
        assert runtime.engine.state is PlcState.FAULTED
        assert runtime.engine.fault == "the scan process ended unexpectedly"
        assert runtime.ready()[0] is False
        assert runtime.engine.snapshot.values["Pump"] is False  # servers show the safe state too
        refused = await runtime.apply_source(TANK.replace("Count := Count + 1;", "Count := Count + 2;"))
        assert not refused.accepted and "scan process" in refused.reason


async def test_a_frozen_scan_process_is_noticed_and_faults_into_the_safe_state(
    tmp_path: Path, remote_io: RemoteIO
) -> None:
    io = {"fieldDevices": [field_device(remote_io.port)]}
    async with running_plc(tmp_path, io=io, watchdog="50ms") as runtime:
        await remote_io.set_register(0, 900)
        await async_wait_for(lambda: remote_io.coil(0), timeout=15, what="pump on")
        assert isinstance(runtime.engine, RemoteEngine) and runtime.engine.process is not None
        os.kill(runtime.engine.process.pid, signal.SIGSTOP)  # frozen: its own watchdog cannot act

        async def pump_off() -> bool:
            return not await remote_io.coil(0)

        await async_wait_for(pump_off, timeout=15, what="safe state after the scan process froze")
        assert runtime.engine.state is PlcState.FAULTED
        assert runtime.engine.fault.startswith("the scan process stopped publishing")
