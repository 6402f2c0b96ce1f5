"""The Modbus TCP server over the scan's process image, read and written by a real pymodbus client and raw frames.

Every test runs under an asyncio timeout (a hang fails it with a traceback inside the event loop); nothing sleeps
for a fixed time: tests wait for answers, or poll a condition until a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu.mei_message import ReadDeviceInformationResponse

from shopfloor_vplc.image import PlcState, Snapshot, WriteQueue, WriteRefused
from shopfloor_vplc.metrics import RuntimeMetrics
from shopfloor_vplc.modbus_codec import Binding, Table, WordOrder
from shopfloor_vplc.modbus_server import ModbusServer
from tests.support.mosquitto import free_port

# The backstop: pytest-timeout's thread ends the run if the event loop itself is stuck.
pytestmark = pytest.mark.timeout(60)

TIMEOUT_S = 10.0  # each test's own asyncio timeout

BINDINGS = [
    Binding("Running", Table.COILS, 0, "BOOL"),
    Binding("Alarm", Table.DISCRETE_INPUTS, 3, "BOOL"),
    Binding("Setpoint", Table.HOLDING_REGISTERS, 0, "INT"),
    Binding("Level", Table.HOLDING_REGISTERS, 2, "REAL"),
    Binding("Total", Table.INPUT_REGISTERS, 0, "DINT", WordOrder.LITTLE_ENDIAN),
]
VALUES = {"Running": True, "Alarm": False, "Setpoint": -7, "Level": 12.5, "Total": 70000}
REVISION = "sha256:test"


@dataclass
class Image:
    """Stands where the scan engine stands: publishes snapshots, applies queued writes at a 'scan boundary'."""

    snapshot: Snapshot
    writes: WriteQueue = field(default_factory=WriteQueue)

    def boundary(self) -> None:
        values = dict(self.snapshot.values)
        applied = self.snapshot.applied_write_id
        for write_id, path, value in self.writes.drain():
            values[path] = value
            applied = write_id
        self.snapshot = Snapshot.of(self.snapshot.seq + 1, values, applied, PlcState.RUNNING, REVISION)


@dataclass
class Served:
    image: Image
    server: ModbusServer
    metrics: RuntimeMetrics
    requests: list[tuple[int, str]]

    @property
    def port(self) -> int:
        return self.server.port

    def bad_requests(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value("shopfloor_vplc_modbus_bad_requests_total", {"reason": reason})
        return value or 0.0


@asynccontextmanager
async def serving(
    bindings: list[Binding] = BINDINGS, *, writes: Any = None, image: Image | None = None, **options: Any
) -> AsyncIterator[Served]:
    image = image or Image(Snapshot.of(1, dict(VALUES), 0, PlcState.RUNNING, REVISION))
    metrics = RuntimeMetrics()
    requests: list[tuple[int, str]] = []

    def on_request(function: int, result: str) -> None:
        requests.append((function, result))
        metrics.modbus_request(function, result)

    server = ModbusServer(
        bindings,
        lambda: image.snapshot,
        writes if writes is not None else image.writes,
        host="127.0.0.1",
        port=free_port(),
        on_request=on_request,
        on_bad_request=metrics.modbus_bad_request,
        **options,
    )
    await server.start()
    try:
        yield Served(image, server, metrics, requests)
    finally:
        async with asyncio.timeout(5):
            await server.stop()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with serving(plc_name="line-1") as each:
        yield each


async def connect(port: int) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await client.connect()
    return client


@asynccontextmanager
async def client_of(port: int) -> AsyncIterator[AsyncModbusTcpClient]:
    client = await connect(port)
    try:
        yield client
    finally:
        client.close()


# -- raw frames


def mbap(transaction: int, pdu: bytes, unit: int = 1, protocol: int = 0, length: int | None = None) -> bytes:
    return struct.pack(">HHHB", transaction, protocol, len(pdu) + 1 if length is None else length, unit) + pdu


@dataclass
class Reply:
    transaction: int
    protocol: int
    unit: int
    pdu: bytes

    @property
    def exception(self) -> int:
        """The exception code, 0 for a normal response."""
        return self.pdu[1] if self.pdu[0] & 0x80 else 0


class Raw:
    """A client that sends frames as bytes and reads replies frame by frame."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self) -> Reply:
        transaction, protocol, length, unit = struct.unpack(">HHHB", await self.reader.readexactly(7))
        return Reply(transaction, protocol, unit, await self.reader.readexactly(length - 1))

    async def ask(self, pdu: bytes, unit: int = 1, transaction: int = 1) -> Reply:
        await self.send(mbap(transaction, pdu, unit))
        reply = await self.reply()
        assert (reply.transaction, reply.protocol, reply.unit) == (transaction, 0, unit)
        return reply

    async def closed_by_server(self) -> bool:
        return await self.reader.read(1) == b""


@asynccontextmanager
async def raw(port: int) -> AsyncIterator[Raw]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Raw(reader, writer)
    finally:
        writer.close()


# -- reads and writes


async def test_reads_each_table_with_the_variables_types(served: Served) -> None:
    async with asyncio.timeout(TIMEOUT_S), client_of(served.port) as client:
        assert (await client.read_coils(0, count=1)).bits[0] is True
        assert (await client.read_discrete_inputs(3, count=1)).bits[0] is False
        registers = (await client.read_holding_registers(0, count=1)).registers
        assert client.convert_from_registers(registers, client.DATATYPE.INT16) == -7
        level = (await client.read_holding_registers(2, count=2)).registers
        assert client.convert_from_registers(level, client.DATATYPE.FLOAT32) == 12.5
        total = (await client.read_input_registers(0, count=2)).registers
        assert total == [70000 & 0xFFFF, 70000 >> 16]  # LittleEndian: low word first


async def test_unmapped_addresses_and_read_only_tables_answer_exceptions(served: Served) -> None:
    async with asyncio.timeout(TIMEOUT_S), client_of(served.port) as client:
        gap = await client.read_holding_registers(1, count=1)
        assert gap.isError() and gap.exception_code == 2  # ILLEGAL DATA ADDRESS
        past = await client.read_holding_registers(3, count=2)  # the second half of Level, then nothing
        assert past.isError() and past.exception_code == 2
        assert (await client.read_coils(1, count=1)).exception_code == 2
    assert (3, "exception_2") in served.requests


async def test_writes_land_at_the_next_scan_boundary(served: Served) -> None:
    image = served.image
    async with asyncio.timeout(TIMEOUT_S), client_of(served.port) as client:
        assert not (await client.write_register(0, 42)).isError()
        level_words = client.convert_to_registers(99.25, client.DATATYPE.FLOAT32)
        assert not (await client.write_registers(2, level_words)).isError()
        assert not (await client.write_coil(0, False)).isError()
        assert image.snapshot.values["Setpoint"] == -7  # not yet: the scan owns the variables
        assert (await client.read_holding_registers(0, count=1)).registers == [42]  # read back as written
        image.boundary()
        assert image.snapshot.values["Setpoint"] == 42
        assert image.snapshot.values["Level"] == 99.25
        assert image.snapshot.values["Running"] is False
        half = await client.write_register(3, 0)  # one word of a REAL merges with the other, current word
        assert not half.isError()
        image.boundary()
        assert image.snapshot.values["Level"] == 99.0
        masked = await client.mask_write_register(address=0, and_mask=0x00F0, or_mask=0x0005)
        assert not masked.isError()
        image.boundary()
        assert image.snapshot.values["Setpoint"] == (42 & 0x00F0) | (0x0005 & ~0x00F0)
        both = await client.readwrite_registers(read_address=0, read_count=1, write_address=0, values=[7])
        assert not both.isError() and both.registers == [7]  # the write comes first


async def test_writing_a_read_only_or_unmapped_address_is_refused(served: Served) -> None:
    async with asyncio.timeout(TIMEOUT_S), client_of(served.port) as client:
        assert (await client.write_register(1, 5)).exception_code == 2
        assert (await client.write_coil(7, True)).exception_code == 2
        # FC23 checks its read range before writing: an unmapped read leaves the image as it was.
        refused = await client.readwrite_registers(read_address=1, read_count=1, write_address=0, values=[9])
        assert refused.exception_code == 2
    assert served.image.writes.drain() == []


async def test_a_write_while_the_runtime_does_not_hold_its_lock_answers_server_busy() -> None:
    class Refusing:
        def put(self, path: str, value: Any) -> int:
            raise WriteRefused(f"{path}: this runtime does not hold its lock")

    async with asyncio.timeout(TIMEOUT_S), serving(writes=Refusing()) as each, client_of(each.port) as client:
        assert (await client.write_register(0, 1)).exception_code == 6  # SERVER DEVICE BUSY
        assert (await client.write_coil(0, False)).exception_code == 6
        assert not (await client.read_holding_registers(0, count=1)).isError()  # reads go on
    assert (6, "exception_6") in each.requests


# -- unit ids


@pytest.mark.parametrize(
    ("configured", "unit", "answered"),
    [
        (1, 1, True),
        (1, 255, True),  # a device addressed directly over TCP (libmodbus's default)
        (1, 0, True),  # "also accepted to communicate directly to a MODBUS/TCP device"
        (1, 9, False),
        (17, 17, True),
        (17, 255, True),
        (17, 0, True),
        (17, 1, False),
    ],
)
async def test_the_configured_unit_id_and_the_direct_ones_are_answered(
    configured: int, unit: int, answered: bool
) -> None:
    async with asyncio.timeout(TIMEOUT_S), serving(unit_id=configured) as each, client_of(each.port) as client:
        response = await client.read_holding_registers(0, count=1, device_id=unit)
        if answered:
            assert not response.isError() and response.registers == [0xFFF9]
            assert each.bad_requests("unit_id") == 0
        else:
            assert response.isError() and response.exception_code == 11  # GATEWAY TARGET DEVICE FAILED TO RESPOND
            assert each.bad_requests("unit_id") == 1


# -- identity


async def device_information(
    client: AsyncModbusTcpClient, read_code: int, object_id: int = 0
) -> ReadDeviceInformationResponse:
    response = await client.read_device_information(read_code=read_code, object_id=object_id)
    assert isinstance(response, ReadDeviceInformationResponse), response
    return response


async def test_device_identification_names_shopfloor_the_plc_and_its_program_revision(served: Served) -> None:
    async with asyncio.timeout(TIMEOUT_S), client_of(served.port) as client:
        basic = await device_information(client, 1)
        assert not basic.isError()
        assert basic.information == {0: b"Shopfloor", 1: b"shopfloor-vplc", 2: REVISION.encode()}
        assert basic.conformity == 0x82  # regular identification, stream and individual access
        regular = await device_information(client, 2)
        assert regular.information[4] == b"Shopfloor vPLC"
        assert regular.information[6] == b"line-1"  # UserApplicationName
        extended = await device_information(client, 3)  # above the conformity level: regular
        assert extended.information == regular.information
        single = await device_information(client, 4, 6)
        assert single.information == {6: b"line-1"}
        no_url = await client.read_device_information(read_code=4, object_id=3)
        assert no_url.isError() and no_url.exception_code == 2  # there is no VendorUrl
        # After an online change the revision is the new program's.
        served.image.snapshot = Snapshot.of(2, dict(VALUES), 0, PlcState.RUNNING, "sha256:next")
        assert (await device_information(client, 4, 2)).information == {2: b"sha256:next"}
    assert not any(b"Pymodbus" in value for value in regular.information.values())


async def test_a_long_identification_continues_in_a_second_transaction() -> None:
    name = "plc-" + "x" * 200
    async with asyncio.timeout(TIMEOUT_S), serving(plc_name=name) as each, client_of(each.port) as client:
        first = await device_information(client, 2)
        assert first.more_follows == 0xFF and first.next_object_id == 6
        assert 6 not in first.information
        rest = await device_information(client, 2, first.next_object_id)
        assert rest.more_follows == 0 and rest.information == {6: name.encode()}


async def test_report_server_id_names_shopfloor_the_plc_and_its_program_revision(served: Served) -> None:
    async with asyncio.timeout(TIMEOUT_S), raw(served.port) as conn:
        reply = await conn.ask(b"\x11")
        assert reply.exception == 0
        byte_count, server_id, run = reply.pdu[1], reply.pdu[2], reply.pdu[3]
        assert byte_count == len(reply.pdu) - 2
        assert (server_id, run) == (1, 0xFF)  # the unit id; run indicator ON while Running
        assert reply.pdu[4:].decode() == f"Shopfloor vPLC line-1 {REVISION}"
        served.image.snapshot = Snapshot.of(2, dict(VALUES), 0, PlcState.FAULTED, REVISION, "division by zero")
        assert (await conn.ask(b"\x11")).pdu[3] == 0x00  # OFF while not Running


# -- the byte stream


async def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    async with asyncio.timeout(TIMEOUT_S), raw(served.port) as conn:
        await conn.send(mbap(1, b"\x03\x00\x00\x00\x01") + mbap(2, b"\x01\x00\x00\x00\x01") + mbap(3, b"\x5b"))
        replies = [await conn.reply() for _ in range(3)]
    assert [r.transaction for r in replies] == [1, 2, 3]
    assert replies[0].pdu == b"\x03\x02\xff\xf9"
    assert replies[1].pdu == b"\x01\x01\x01"
    assert replies[2].pdu == b"\xdb\x01"  # ILLEGAL FUNCTION, with the request's function code


async def test_a_frame_split_across_segments_is_answered(served: Served) -> None:
    async with asyncio.timeout(TIMEOUT_S), raw(served.port) as conn:
        frame = mbap(5, b"\x03\x00\x00\x00\x01")
        for index in range(len(frame)):
            await conn.send(frame[index : index + 1])
        assert (await conn.reply()).pdu == b"\x03\x02\xff\xf9"


async def test_a_frame_with_another_protocol_id_is_discarded_and_the_connection_goes_on(served: Served) -> None:
    async with asyncio.timeout(TIMEOUT_S), raw(served.port) as conn:
        await conn.send(mbap(1, b"\x03\x00\x00\x00\x01", protocol=7) + mbap(2, b"\x03\x00\x00\x00\x01"))
        reply = await conn.reply()
    assert reply.transaction == 2  # the first frame got no answer
    assert served.bad_requests("protocol_id") == 1


@pytest.mark.parametrize("length", [0, 1, 255, 0xFFFF])
async def test_an_impossible_mbap_length_closes_that_connection(served: Served, length: int) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        async with raw(served.port) as conn:
            await conn.send(mbap(1, b"\x03\x00\x00\x00\x01", length=length))
            assert await conn.closed_by_server()
        async with client_of(served.port) as client:
            assert not (await client.read_coils(0, count=1)).isError()
    assert served.bad_requests("length") == 1


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        ("truncated MBAP", b"\x00\x01\x00"),
        ("length shorter than the PDU", mbap(1, b"\x03\x00\x00\x00\x01", length=2)),
        ("length longer than what follows", mbap(1, b"\x03\x00\x00\x00\x01", length=200)),
        ("zero length", mbap(1, b"", length=0)),
        ("unknown function code", mbap(1, b"\x5b\x00\x00\x00\x01")),
        ("garbage", bytes(range(256)) * 2),
        ("non-zero protocol id", mbap(1, b"\x03\x00\x00\x00\x01", protocol=7)),
        ("count beyond the limit", mbap(1, b"\x03\x00\x00\x07\xd1")),
        ("truncated PDU", mbap(1, b"\x10\x00\x00\x00\x02\x04\x00")),
    ],
)
async def test_malformed_frames_never_stop_the_server(served: Served, name: str, frame: bytes) -> None:
    async with asyncio.timeout(TIMEOUT_S), client_of(served.port) as healthy:  # connected before, during, after
        async with raw(served.port) as conn:
            await conn.send(frame)
            try:  # an answer, if any, is a Modbus frame; the server may also wait for more, or close
                reply = await asyncio.wait_for(conn.reply(), 0.5)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionResetError):
                pass
            else:
                assert reply.protocol == 0 and reply.exception in (1, 3), f"{name}: {reply}"
            assert (await healthy.read_holding_registers(0, count=1)).registers == [0xFFF9]
        async with client_of(served.port) as fresh:
            assert not (await fresh.read_coils(0, count=1)).isError()


async def test_unknown_function_code_answers_illegal_function(served: Served) -> None:
    async with asyncio.timeout(TIMEOUT_S), raw(served.port) as conn:
        reply = await conn.ask(b"\x5b\x00\x00\x00\x01", transaction=9)
    assert reply.pdu == bytes([0x5B | 0x80, 1])
    assert (0x5B, "exception_1") in served.requests


# -- a client that misbehaves does not flood the log


Burst = Callable[[Raw, int], Awaitable[None]]


async def _unknown_units(conn: Raw, count: int) -> None:
    await conn.send(b"".join(mbap(n, b"\x03\x00\x00\x00\x01", unit=9) for n in range(count)))
    for _ in range(count):
        assert (await conn.reply()).exception == 11


async def _malformed(conn: Raw, count: int) -> None:
    await conn.send(b"".join(mbap(n, b"\x03\x00\x00") for n in range(count)))  # FC3 without its quantity
    for _ in range(count):
        assert (await conn.reply()).exception == 3


async def _other_protocol(conn: Raw, count: int) -> None:
    await conn.send(b"".join(mbap(n, b"\x03\x00\x00\x00\x01", protocol=1) for n in range(count)))
    assert (await conn.ask(b"\x03\x00\x00\x00\x01", transaction=0xFFFF)).exception == 0  # all before it were read


class BadRequestLines(logging.Handler):
    """The server's log lines about one reason; `all_counted` is set once their counts add up to `expected`."""

    def __init__(self, reason: str, expected: int) -> None:
        super().__init__(logging.DEBUG)
        self.reason, self.expected = reason, expected
        self.records: list[logging.LogRecord] = []
        self.all_counted = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "reason", None) == self.reason:
            self.records.append(record)
            if sum(getattr(r, "count", 0) for r in self.records) >= self.expected:
                self.all_counted.set()


@pytest.mark.parametrize(
    ("reason", "burst"), [("unit_id", _unknown_units), ("malformed", _malformed), ("protocol_id", _other_protocol)]
)
async def test_a_burst_of_bad_frames_is_counted_in_full_and_logged_a_bounded_number_of_times(
    caplog: pytest.LogCaptureFixture, reason: str, burst: Burst
) -> None:
    count, interval = 500, 0.5
    caplog.set_level(logging.DEBUG)
    # The libraries as the runtime configures them by default (shopfloor_inpod.logs), whatever a test before left.
    for library in ("pymodbus", "pymodbus.logging"):
        caplog.set_level(logging.WARNING, logger=library)
    lines = BadRequestLines(reason, count)
    logger = logging.getLogger("shopfloor_vplc.modbus_server")
    logger.addHandler(lines)
    try:
        async with asyncio.timeout(TIMEOUT_S), serving(log_interval=interval) as each:
            started = time.monotonic()
            async with raw(each.port) as conn:
                await burst(conn, count)
            assert each.bad_requests(reason) == count  # the metric counts every one
            await lines.all_counted.wait()  # the first one at once, the rest summed up at the end of the interval
            elapsed = time.monotonic() - started
    finally:
        logger.removeHandler(lines)
    assert sum(getattr(r, "count", 0) for r in lines.records) == count
    assert 2 <= len(lines.records) <= 2 + elapsed / interval  # at most one line per interval
    assert all(r.levelno == logging.WARNING for r in lines.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.name.startswith("pymodbus")]


async def test_what_is_left_to_summarize_is_logged_when_the_server_stops(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with asyncio.timeout(TIMEOUT_S):
        async with serving(log_interval=3600) as each, raw(each.port) as conn:
            await _unknown_units(conn, 3)
        counts = [getattr(r, "count", 0) for r in caplog.records if getattr(r, "reason", None) == "unit_id"]
    assert counts == [1, 2]
