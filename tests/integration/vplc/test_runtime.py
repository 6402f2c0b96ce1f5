"""The whole runtime: a compiled program on the scan engine, served over Modbus and OPC UA, driving remote I/O."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from asyncua import Client, ua

from shopfloor_vplc.image import PlcState
from shopfloor_vplc.opcua_server import NAMESPACE_URI
from tests.integration.vplc.conftest import RemoteIO
from tests.integration.vplc.runtime_support import TANK, field_device, modbus_client, running_plc
from tests.support.waiting import async_wait_for

# A hang fails this test with a traceback instead of stalling the suite.
pytestmark = pytest.mark.timeout(60)


def when(predicate: object) -> object:
    async def check() -> bool:
        return bool(predicate())  # type: ignore[operator]

    return check


async def test_modbus_client_reads_and_writes_the_running_program(tmp_path: Path) -> None:
    async with running_plc(tmp_path) as runtime, modbus_client(runtime) as client:

        async def count() -> int:
            registers = (await client.read_input_registers(0, count=2)).registers
            return int(client.convert_from_registers(registers, client.DATATYPE.INT32))

        first = await count()

        async def counted_on() -> bool:
            return await count() > first

        await async_wait_for(counted_on, timeout=15, what="the scan counter moving on")
        assert not (await client.write_register(0, 7)).isError()
        await async_wait_for(when(lambda: runtime.engine.snapshot.values["Setpoint"] == 7), timeout=15)
        ratio = (await client.read_holding_registers(2, count=2)).registers
        assert client.convert_from_registers(ratio, client.DATATYPE.FLOAT32) == 0.5


async def test_opcua_client_reads_subscribes_and_writes_only_writable(tmp_path: Path) -> None:
    opcua = {"enabled": True, "securityPolicies": ["None"], "allowAnonymous": True, "writable": ["Setpoint"]}
    async with running_plc(tmp_path, io={"modbus": {"enabled": False}, "opcua": opcua}) as runtime:
        assert runtime.opcua is not None
        async with Client(runtime.opcua.endpoint, timeout=15) as client:
            ns = await client.get_namespace_index(NAMESPACE_URI)
            count = client.get_node(ua.NodeId("Count", ns))
            assert await count.read_data_type_as_variant_type() == ua.VariantType.Int32
            seen: list[int] = []

            class Handler:
                def datachange_notification(self, node: object, value: int, data: object) -> None:
                    seen.append(value)

            subscription = await client.create_subscription(20, Handler())
            await subscription.subscribe_data_change(count)
            await async_wait_for(when(lambda: len(set(seen)) >= 3), timeout=15, what="Count notifications")
            await client.get_node(ua.NodeId("Setpoint", ns)).write_value(ua.Variant(42, ua.VariantType.Int16))
            await async_wait_for(when(lambda: runtime.engine.snapshot.values["Setpoint"] == 42), timeout=15)
            pump = client.get_node(ua.NodeId("Pump", ns))
            try:
                await pump.write_value(ua.Variant(True, ua.VariantType.Boolean))
                raise AssertionError("Pump is not in io.opcua.writable")
            except ua.UaStatusCodeError:
                pass
            await subscription.delete()


async def test_closed_loop_sensor_input_drives_output_coil(tmp_path: Path, remote_io: RemoteIO) -> None:
    io = {"fieldDevices": [field_device(remote_io.port)]}
    async with running_plc(tmp_path, io=io) as runtime:
        await async_wait_for(when(lambda: runtime.engine.snapshot.values["IO_RIO_1_OK"] is True), timeout=15)
        await remote_io.set_register(0, 800)
        await async_wait_for(lambda: remote_io.coil(0), timeout=15, what="pump switched on by the level")
        await remote_io.set_register(0, 100)

        async def pump_off() -> bool:
            return not await remote_io.coil(0)

        await async_wait_for(pump_off, timeout=15, what="pump switched off")


async def test_online_change_keeps_state_under_a_polling_modbus_client(tmp_path: Path) -> None:
    async with running_plc(tmp_path) as runtime, modbus_client(runtime) as client:
        errors: list[object] = []
        counts: list[int] = []
        polling = True

        async def poll() -> None:
            while polling:
                response = await client.read_input_registers(0, count=2)
                if response.isError():
                    errors.append(response)
                else:
                    counts.append(client.convert_from_registers(response.registers, client.DATATYPE.INT32))
                await asyncio.sleep(0.002)

        poller = asyncio.create_task(poll())
        assert not (await client.write_register(0, 321)).isError()
        await async_wait_for(when(lambda: runtime.engine.snapshot.values["Setpoint"] == 321), timeout=15)
        old_revision = runtime.engine.program.revision
        v2 = TANK.replace("Count := Count + 1;", "Count := Count + 2;")
        outcome = await runtime.apply_source(v2)
        assert outcome.accepted and outcome.revision != old_revision, outcome.message()
        refused = await runtime.apply_source(TANK.replace("Count := Count + 1;", "Count := Nope;"))
        assert not refused.accepted and "Nope" in refused.reason
        unmapped = await runtime.apply_source(TANK.replace("  Setpoint : INT := 500;\n", ""))
        assert not unmapped.accepted and "Setpoint" in unmapped.reason
        polled = len(counts)
        await async_wait_for(when(lambda: len(counts) >= polled + 10), timeout=15, what="polls after the changes")
        polling = False
        await poller
        assert runtime.engine.program.revision == outcome.revision
        assert runtime.engine.snapshot.values["Setpoint"] == 321  # state carried over
        assert errors == []
        assert counts == sorted(counts) and len(counts) > 10  # never restarted from zero
        assert counts[-1] > counts[0], "the program counted on through the changes"


async def test_watchdog_writes_the_safe_state_to_the_field_device(tmp_path: Path, remote_io: RemoteIO) -> None:
    io = {"modbus": {"map": [{"variable": "Hang", "table": "coils", "address": 1}]}}
    io["fieldDevices"] = [field_device(remote_io.port)]
    async with running_plc(tmp_path, io=io, watchdog="40ms") as runtime, modbus_client(runtime) as client:
        await remote_io.set_register(0, 900)
        await async_wait_for(lambda: remote_io.coil(0), timeout=15, what="pump on")
        await client.write_coil(1, True)  # the program now loops forever inside one scan

        async def pump_off() -> bool:
            return not await remote_io.coil(0)

        await async_wait_for(pump_off, timeout=15, what="safe state on the device")
        assert runtime.engine.state is PlcState.FAULTED
        assert "watchdog" in runtime.engine.fault
        assert runtime.ready()[0] is False


async def test_device_loss_faults_and_writes_safe_state_to_the_others(tmp_path: Path, remote_io: RemoteIO) -> None:
    from tests.integration.vplc.conftest import start_device
    from tests.support.mosquitto import free_port

    output_port = free_port()
    output_device = await start_device(output_port)
    sensor = field_device(remote_io.port, name="rio-1")
    sensor["outputs"] = []
    actuator = field_device(output_port, name="rio-2")
    actuator["inputs"] = []
    try:
        async with running_plc(tmp_path, io={"fieldDevices": [sensor, actuator]}) as runtime:
            await remote_io.set_register(0, 900)
            await async_wait_for(when(lambda: runtime.engine.snapshot.values["Pump"]), timeout=15)
            from pymodbus.client import AsyncModbusTcpClient

            watcher = AsyncModbusTcpClient("127.0.0.1", port=output_port, timeout=2, retries=0)
            await watcher.connect()

            async def actuator_coil() -> bool:
                return bool((await watcher.read_coils(0, count=1)).bits[0])

            await async_wait_for(actuator_coil, timeout=15, what="pump on at rio-2")
            await remote_io.stop()

            async def safe() -> bool:
                return not await actuator_coil()

            await async_wait_for(safe, timeout=15, what="safe state at rio-2 after rio-1 was lost")
            assert runtime.engine.state is PlcState.FAULTED
            assert runtime.engine.fault == "field device rio-1 lost"
            watcher.close()
    finally:
        await output_device.shutdown()


async def test_retained_values_survive_a_restart(tmp_path: Path) -> None:
    async with running_plc(tmp_path) as runtime, modbus_client(runtime) as client:
        await client.write_register(4, 0)
        await client.write_register(5, 1234)  # Starts : DINT in two registers, high word first
        await async_wait_for(when(lambda: runtime.engine.snapshot.values.get("Starts") == 1234), timeout=15)
    assert (tmp_path / "mixer-1.retain.json").is_file()
    async with running_plc(tmp_path) as restarted, modbus_client(restarted) as client:
        registers = (await client.read_holding_registers(4, count=2)).registers
        assert client.convert_from_registers(registers, client.DATATYPE.INT32) == 1234
        assert restarted.engine.snapshot.values["Count"] < 1000  # non-retained variables start over


async def test_metrics_and_health_endpoints(tmp_path: Path) -> None:
    async with running_plc(tmp_path) as runtime, modbus_client(runtime) as client:
        await client.read_holding_registers(0, count=1)
        await client.read_holding_registers(1, count=1)
        assert runtime.http is not None
        base = f"http://127.0.0.1:{runtime.http.port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with session.get(f"{base}/readyz") as response:
                assert response.status == 200
            async with session.get(f"{base}/metrics") as response:
                text = await response.text()
    for name in (
        "shopfloor_vplc_scan_duration_seconds_bucket",
        "shopfloor_vplc_wakeup_lateness_seconds_bucket",
        "shopfloor_vplc_overruns_total",
        "shopfloor_vplc_scans_total",
        "shopfloor_vplc_realtime_granted",
        "shopfloor_vplc_opcua_sessions",
    ):
        assert name in text
    assert f'shopfloor_vplc_program_info{{revision="{runtime.engine.program.revision}"}} 1.0' in text
    assert 'shopfloor_vplc_modbus_requests_total{function="3",result="ok"} 1.0' in text
    assert 'shopfloor_vplc_modbus_requests_total{function="3",result="exception_2"} 1.0' in text
    assert 'shopfloor_vplc_state{state="Running"} 1.0' in text


STRUCTURED = """TYPE Tank : STRUCT Level : REAL; Full : BOOL; END_STRUCT; END_TYPE
PROGRAM Main
VAR
  T : Tank;
  Trend : ARRAY[1..3] OF INT;
END_VAR
T.Level := T.Level + 1.0;
T.Full := T.Level > 5.0;
Trend[2] := 42;
END_PROGRAM
"""


async def test_structure_members_are_mapped_by_dotted_path(tmp_path: Path) -> None:
    mapping = [
        {"variable": "T.Level", "table": "inputRegisters", "address": 0},
        {"variable": "t.full", "table": "discreteInputs", "address": 0},
    ]
    io = {"modbus": {"map": mapping}}
    async with running_plc(tmp_path, STRUCTURED, io=io, safeState={}) as runtime, modbus_client(runtime) as client:
        await async_wait_for(when(lambda: runtime.engine.snapshot.values["T.Level"] > 6), timeout=15)
        level = (await client.read_input_registers(0, count=2)).registers
        assert client.convert_from_registers(level, client.DATATYPE.FLOAT32) > 6
        assert (await client.read_discrete_inputs(0, count=1)).bits[0] is True


async def test_online_change_refuses_to_drop_what_opcua_serves(tmp_path: Path) -> None:
    opcua = {"enabled": True, "securityPolicies": ["None"], "allowAnonymous": True}
    async with running_plc(tmp_path, io={"modbus": {"map": []}, "opcua": opcua}) as runtime:
        without_ratio = await runtime.apply_source(TANK.replace("  Ratio : REAL := 0.5;\n", ""))
        assert not without_ratio.accepted
        assert without_ratio.reason == "Ratio is served over OPC UA: removing it needs a restart"
        retyped = await runtime.apply_source(TANK.replace("Ratio : REAL := 0.5;", "Ratio : LREAL := 0.5;"))
        assert retyped.reason == "Ratio changes type from REAL to LREAL while served over OPC UA"
        count = runtime.engine.snapshot.values["Count"]
        await async_wait_for(when(lambda: runtime.engine.snapshot.values["Count"] > count), timeout=15)


async def test_secured_opcua_without_a_certificate_is_refused_before_starting(tmp_path: Path) -> None:
    opcua = {"enabled": True, "certificateSecretRef": {"name": "mixer-1-opcua"}}
    with pytest.raises(ValueError, match="Basic256Sha256_SignAndEncrypt need the server certificate and key"):
        async with running_plc(tmp_path, io={"opcua": opcua}):
            raise AssertionError("the runtime must not start")
