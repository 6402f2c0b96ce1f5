"""The I/O scanner against a simulated remote I/O device (a real pymodbus server)."""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable

import pytest

from shopfloor_vplc.field_io import QUALITY_GOOD, QUALITY_UNCERTAIN, DeviceConfig, DeviceLink, FieldIO
from shopfloor_vplc.modbus_codec import Binding, Table
from tests.integration.vplc.conftest import RemoteIO
from tests.support.waiting import async_wait_for, bounded

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
    await bounded(remote_io.set_register(0, -12), "the device to take LevelRaw")
    field = FieldIO([device_config(remote_io.port)])
    await bounded(field.start(), "the scanner's first poll")
    try:
        assert field.latest_inputs() == {"LevelRaw": -12, "IO_RIO_1_OK": True, "IO_RIO_1_QUALITY": QUALITY_GOOD}
        await bounded(remote_io.set_register(0, 300), "the device to take the new LevelRaw")
        await async_wait_for(condition(lambda: field.latest_inputs()["LevelRaw"] == 300), timeout=15, what="new input")
        await asyncio.to_thread(field.write_outputs, {"Pump": True, "Speed": 1500})
        await async_wait_for(remote_io_coil_is(remote_io, True), timeout=15, what="pump on")
        assert await bounded(remote_io.register(5), "reading Speed back") == 1500
    finally:
        await stopped(field)


async def stopped(field: FieldIO) -> None:
    tasks = list(field._tasks)
    await bounded(field.stop(), "the I/O scanner to stop")
    assert [task.get_name() for task in tasks if not task.done()] == []


def remote_io_coil_is(device: RemoteIO, value: bool) -> object:
    async def check() -> bool:
        return await device.coil(0) is value

    return check


async def test_safe_state_wins_over_later_scan_outputs(remote_io: RemoteIO) -> None:
    field = FieldIO([device_config(remote_io.port)])
    await bounded(field.start(), "the scanner's first poll")
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
        assert await bounded(remote_io.coil(0), "reading Pump back") is False
        assert await bounded(remote_io.register(5), "reading Speed back") == 0
    finally:
        await stopped(field)


async def test_device_loss_faults_or_holds_last_value(remote_io: RemoteIO) -> None:
    await bounded(remote_io.set_register(0, 7), "the device to take LevelRaw")
    faulting = FieldIO([device_config(remote_io.port)])
    holding = FieldIO([device_config(remote_io.port, hold_last_value=True)])
    await bounded(faulting.start(), "the first scanner's first poll")
    await bounded(holding.start(), "the second scanner's first poll")
    try:
        assert faulting.lost_device() is None
        await bounded(remote_io.stop(), "the device to go away")
        await async_wait_for(condition(lambda: faulting.lost_device() == "rio-1"), timeout=15, what="loss detected")
        await async_wait_for(condition(lambda: not holding.latest_inputs()["IO_RIO_1_OK"]), timeout=15, what="hold")
        assert holding.lost_device() is None
        assert holding.latest_inputs()["LevelRaw"] == 7
        assert holding.latest_inputs()["IO_RIO_1_QUALITY"] == QUALITY_UNCERTAIN
        await bounded(remote_io.start(), "the device to come back")
        await async_wait_for(condition(lambda: holding.latest_inputs()["IO_RIO_1_OK"]), timeout=15, what="recovery")
    finally:
        await stopped(faulting)
        await stopped(holding)


async def test_a_device_that_comes_up_late_does_not_fault_the_start(remote_io: RemoteIO) -> None:
    await bounded(remote_io.stop(), "the device to go away")

    async def power_on_later() -> None:
        await asyncio.sleep(0.3)  # the scenario: the device boots a moment after the runtime
        await remote_io.start()

    powering = asyncio.create_task(power_on_later())
    field = FieldIO([device_config(remote_io.port)])
    await bounded(field.start(grace_s=5), "the scanner's start (at most its 5 s grace)")
    try:
        await bounded(powering, "the device to power on")
        assert field.lost_device() is None
        assert field.latest_inputs()["IO_RIO_1_OK"] is True
    finally:
        await stopped(field)


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
        await bounded(field.start(grace_s=0.5), "the scanner's start (at most its 0.5 s grace)")
        await async_wait_for(condition(lambda: field.lost_device() == "rio-1"), timeout=15, what="loss detected")
        seen = polls
        await async_wait_for(condition(lambda: polls >= seen + 10), timeout=15, what="ten more failed polls")
    finally:
        await stopped(field)
        for writer in writers:
            writer.close()
        server.close()
        await bounded(server.wait_closed(), "the misbehaving device to close")
    assert not [r for r in caplog.records if ">>>>>" in r.getMessage()]
    assert not [r for r in caplog.records if r.name.startswith("pymodbus")]
    lost = [r for r in caplog.records if r.name == "shopfloor_vplc.field_io"]
    assert len(lost) == 1 and "field device rio-1 lost" in lost[0].getMessage()


async def test_a_silent_device_holds_no_exchange_past_its_timeout() -> None:
    """A device that takes the connection and never answers (a hung remote I/O head): a poll and a write each end
    as a failed exchange once the link's timeout has passed, and the scanner stops."""
    connections: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(260):
            pass

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    config = device_config(server.sockets[0].getsockname()[1])
    link = DeviceLink(config)
    field = FieldIO([config])
    try:
        started = time.monotonic()
        await bounded(link.poll_once(), "a poll of the silent device", timeout=5)
        assert time.monotonic() - started >= config.timeout_s, "the poll gave up before its timeout"
        assert not link.healthy and link.lost and link.inputs == {}
        link.queue_outputs({"Pump": True})
        assert await bounded(link.flush_outputs(), "a write to the silent device", timeout=5) is False
        await bounded(field.start(grace_s=0.5), "the scanner's start (at most its 0.5 s grace)")
        assert field.lost_device() == "rio-1"
    finally:
        link.close()
        await stopped(field)
        for writer in connections:
            writer.close()
        server.close()
        await bounded(server.wait_closed(), "the silent device to close")


async def test_stop_ends_a_poll_whose_answer_arrives_with_the_cancellation() -> None:
    """On Python 3.11, pymodbus's `asyncio.wait_for` returns an answer that arrives in the loop iteration the
    cancellation does instead of raising: a scanner cancelled once at that moment polled on, and its stop waited
    forever. Here the device asks for the stop right as it answers, five times over."""
    for _ in range(5):
        await stop_as_the_device_answers(RecordingDevice(REGISTERS, [True, False]))


async def stop_as_the_device_answers(device: RecordingDevice) -> None:
    async with device as port:
        field = FieldIO([recording_config(port)])
        await bounded(field.start(), "the scanner's first poll")
        tasks = list(field._tasks)
        stopping: list[asyncio.Task[None]] = []

        def stop() -> None:
            if not stopping:
                stopping.append(asyncio.create_task(field.stop()))

        device.after_answer = stop
        await async_wait_for(condition(lambda: stopping), timeout=15, what="an answer to stop the scanner on")
        await bounded(stopping[0], "the I/O scanner to stop")
        assert [task.get_name() for task in tasks if not task.done()] == []


# -- read consistency: contiguous inputs come from one exchange


class RecordingDevice:
    """A Modbus/TCP device that serves holding registers and coils from lists and records each read as
    (function, address, count); with `max_count` it refuses longer reads with exception 2, as some devices refuse
    a read across variables they keep apart."""

    def __init__(self, registers: list[int], coils: list[bool], max_count: int = 2000) -> None:
        self.registers, self.coils, self.max_count = registers, coils, max_count
        self.reads: list[tuple[int, int, int]] = []
        self.server: asyncio.Server | None = None
        self.after_answer: Callable[[], None] = lambda: None  # called right after each answer is sent

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
                self.after_answer()
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
            await bounded(link.poll_once(), "the first poll")
            await bounded(link.poll_once(), "the second poll")
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
