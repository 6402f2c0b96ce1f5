"""The I/O scanner against a simulated remote I/O device (a real pymodbus server)."""

from __future__ import annotations

import asyncio
import logging
import struct
import time

import pytest

from shopfloor_vplc.field_io import QUALITY_GOOD, QUALITY_UNCERTAIN, DeviceConfig, DeviceLink, FieldIO
from shopfloor_vplc.modbus_codec import Binding, Table
from tests.integration.vplc.conftest import RemoteIO
from tests.support.waiting import async_wait_for

# A hang fails this test with a traceback instead of stalling the suite.
pytestmark = pytest.mark.timeout(60)


def device_config(port: int, hold_last_value: bool = False) -> DeviceConfig:
    return DeviceConfig(
        name="rio-1",
        host="127.0.0.1",
        port=port,
        unit_id=1,
        poll_interval_s=0.01,
        inputs=[Binding("LevelRaw", Table.HOLDING_REGISTERS, 0, "INT")],
        outputs=[Binding("Pump", Table.COILS, 0, "BOOL"), Binding("Speed", Table.HOLDING_REGISTERS, 5, "UINT")],
        hold_last_value=hold_last_value,
        ok_variable="IO_RIO_1_OK",
        quality_variable="IO_RIO_1_QUALITY",
        timeout_s=0.3,
    )


def condition(predicate: object) -> object:
    async def check() -> bool:
        return bool(predicate())  # type: ignore[operator]

    return check


async def test_inputs_polled_outputs_written_when_changed(remote_io: RemoteIO) -> None:
    await remote_io.set_register(0, -12)
    field = FieldIO([device_config(remote_io.port)])
    await field.start()
    try:
        assert field.latest_inputs() == {"LevelRaw": -12, "IO_RIO_1_OK": True, "IO_RIO_1_QUALITY": QUALITY_GOOD}
        await remote_io.set_register(0, 300)
        await async_wait_for(condition(lambda: field.latest_inputs()["LevelRaw"] == 300), timeout=15, what="new input")
        await asyncio.to_thread(field.write_outputs, {"Pump": True, "Speed": 1500})
        await async_wait_for(remote_io_coil_is(remote_io, True), timeout=15, what="pump on")
        assert await remote_io.register(5) == 1500
    finally:
        await field.stop()


def remote_io_coil_is(device: RemoteIO, value: bool) -> object:
    async def check() -> bool:
        return await device.coil(0) is value

    return check


async def test_safe_state_wins_over_later_scan_outputs(remote_io: RemoteIO) -> None:
    field = FieldIO([device_config(remote_io.port)])
    await field.start()
    try:
        await asyncio.to_thread(field.write_outputs, {"Pump": True, "Speed": 10})
        await async_wait_for(remote_io_coil_is(remote_io, True), timeout=15, what="pump on")
        await asyncio.to_thread(field.enter_safe_state, {"Pump": False, "Speed": 0})
        await asyncio.to_thread(field.write_outputs, {"Pump": True, "Speed": 99})  # a scan finishing late
        await async_wait_for(remote_io_coil_is(remote_io, False), timeout=15, what="pump off (safe state)")
        # The device has been polled since (polls and writes take turns on one connection): a late write queued
        # before would have reached it by now.
        safe_at = time.monotonic()
        link = field.links[0]

        async def polled_since() -> bool:
            return link.last_success is not None and link.last_success > safe_at

        await async_wait_for(polled_since, timeout=15, what="a poll after the safe state")
        assert await remote_io.coil(0) is False
        assert await remote_io.register(5) == 0
    finally:
        await field.stop()


async def test_device_loss_faults_or_holds_last_value(remote_io: RemoteIO) -> None:
    await remote_io.set_register(0, 7)
    faulting = FieldIO([device_config(remote_io.port)])
    holding = FieldIO([device_config(remote_io.port, hold_last_value=True)])
    await faulting.start()
    await holding.start()
    try:
        assert faulting.lost_device() is None
        await remote_io.stop()
        await async_wait_for(condition(lambda: faulting.lost_device() == "rio-1"), timeout=15, what="loss detected")
        await async_wait_for(condition(lambda: not holding.latest_inputs()["IO_RIO_1_OK"]), timeout=15, what="hold")
        assert holding.lost_device() is None
        assert holding.latest_inputs()["LevelRaw"] == 7
        assert holding.latest_inputs()["IO_RIO_1_QUALITY"] == QUALITY_UNCERTAIN
        await remote_io.start()
        await async_wait_for(condition(lambda: holding.latest_inputs()["IO_RIO_1_OK"]), timeout=15, what="recovery")
    finally:
        await faulting.stop()
        await holding.stop()


async def test_a_device_that_comes_up_late_does_not_fault_the_start(remote_io: RemoteIO) -> None:
    await remote_io.stop()

    async def power_on_later() -> None:
        await asyncio.sleep(0.3)  # the scenario: the device boots a moment after the runtime
        await remote_io.start()

    powering = asyncio.create_task(power_on_later())
    field = FieldIO([device_config(remote_io.port)])
    await field.start(grace_s=5)
    try:
        await powering
        assert field.lost_device() is None
        assert field.latest_inputs()["IO_RIO_1_OK"] is True
    finally:
        await field.stop()


async def test_a_misbehaving_device_logs_one_warning_and_no_frame_dumps(caplog: pytest.LogCaptureFixture) -> None:
    """pymodbus logs each bad answer as an ERROR with a dump of the last frames (`>>>>> send: ...`); the runtime's
    log at WARNING shows only the link's own line about the lost device."""
    caplog.set_level(logging.WARNING)
    writers: list[asyncio.StreamWriter] = []

    async def answer_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(260):  # each request gets a frame with protocol id 7
            writer.write(b"\x00\x01\x00\x07\x00\x05\x01garbage")

    server = await asyncio.start_server(answer_garbage, "127.0.0.1", 0)
    polls = 0

    def polled() -> None:
        nonlocal polls
        polls += 1

    field = FieldIO([device_config(server.sockets[0].getsockname()[1])])
    field.on_polled(polled)
    try:
        await field.start(grace_s=0.5)
        await async_wait_for(condition(lambda: field.lost_device() == "rio-1"), timeout=15, what="loss detected")
        seen = polls
        await async_wait_for(condition(lambda: polls >= seen + 10), timeout=15, what="ten more failed polls")
    finally:
        await field.stop()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
    assert not [r for r in caplog.records if ">>>>>" in r.getMessage()]
    assert not [r for r in caplog.records if r.name.startswith("pymodbus")]
    lost = [r for r in caplog.records if r.name == "shopfloor_vplc.field_io"]
    assert len(lost) == 1 and "field device rio-1 lost" in lost[0].getMessage()


# -- read consistency: contiguous inputs come from one exchange


class RecordingDevice:
    """A Modbus/TCP device that serves holding registers and coils from lists and records each read as
    (function, address, count); with `max_count` it refuses longer reads with exception 2, as some devices refuse
    a read across variables they keep apart."""

    def __init__(self, registers: list[int], coils: list[bool], max_count: int = 2000) -> None:
        self.registers, self.coils, self.max_count = registers, coils, max_count
        self.reads: list[tuple[int, int, int]] = []
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while header := await reader.readexactly(7):
                transaction, _, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                function, address, count = struct.unpack(">BHH", pdu[:5])
                self.reads.append((function, address, count))
                if count > self.max_count:
                    answer = bytes([function | 0x80, 2])
                elif function == 3:
                    words = self.registers[address : address + count]
                    answer = bytes([3, 2 * count]) + struct.pack(f">{count}H", *words)
                else:
                    bits = self.coils[address : address + count]
                    packed = bytes(sum(b << i for i, b in enumerate(bits[n : n + 8])) for n in range(0, count, 8))
                    answer = bytes([function, len(packed)]) + packed
                writer.write(struct.pack(">HHHB", transaction, 0, len(answer) + 1, unit) + answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


INPUTS = [
    Binding("Level", Table.HOLDING_REGISTERS, 0, "INT"),
    Binding("Flow", Table.HOLDING_REGISTERS, 1, "REAL"),  # registers 1 and 2
    Binding("Count", Table.HOLDING_REGISTERS, 3, "UINT"),
    Binding("Alarm", Table.HOLDING_REGISTERS, 10, "INT"),  # not contiguous: a request of its own
    Binding("Run", Table.COILS, 0, "BOOL"),
    Binding("Ready", Table.COILS, 1, "BOOL"),
]
REGISTERS = [0xFFFE, *struct.unpack(">HH", struct.pack(">f", 2.5)), 7, 0, 0, 0, 0, 0, 0, 42]
EXPECTED = {"Level": -2, "Flow": 2.5, "Count": 7, "Alarm": 42, "Run": True, "Ready": False}


def recording_config(port: int) -> DeviceConfig:
    return DeviceConfig("rio-2", "127.0.0.1", port, 1, 0.01, INPUTS, [], hold_last_value=False, timeout_s=0.5)


async def polled_twice(device: RecordingDevice) -> dict[str, object]:
    """Two polls of one link to `device`; the values of the second."""
    async with device as port:
        link = DeviceLink(recording_config(port))
        try:
            await link.poll_once()
            await link.poll_once()
        finally:
            link.close()
    assert link.healthy
    return link.inputs


async def test_contiguous_inputs_are_read_in_one_request_per_block() -> None:
    device = RecordingDevice(REGISTERS, [True, False])
    assert await polled_twice(device) == EXPECTED
    each_poll = [(1, 0, 2), (3, 0, 4), (3, 10, 1)]  # coils 0..1, registers 0..3, register 10
    assert device.reads == each_poll * 2


async def test_a_device_that_refuses_a_block_read_gets_its_variables_one_by_one() -> None:
    device = RecordingDevice(REGISTERS, [True, False], max_count=2)
    assert await polled_twice(device) == EXPECTED
    singly = [(3, 0, 1), (3, 1, 2), (3, 3, 1)]
    # the first poll tries the block once, then reads its variables; the next one reads them singly at once
    assert device.reads == [(1, 0, 2), (3, 0, 4), *singly, (3, 10, 1), (1, 0, 2), *singly, (3, 10, 1)]
