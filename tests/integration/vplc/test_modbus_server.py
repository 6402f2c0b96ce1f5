"""The Modbus TCP server over the scan's process image, read and written by a real pymodbus client and raw sockets."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pymodbus.client import AsyncModbusTcpClient

from shopfloor_vplc.image import PlcState, Snapshot, WriteQueue
from shopfloor_vplc.modbus_codec import Binding, Table, WordOrder
from shopfloor_vplc.modbus_server import ModbusServer
from tests.support.mosquitto import free_port

# A hang fails this test with a traceback instead of stalling the suite.
pytestmark = pytest.mark.timeout(60)

BINDINGS = [
    Binding("Running", Table.COILS, 0, "BOOL"),
    Binding("Alarm", Table.DISCRETE_INPUTS, 3, "BOOL"),
    Binding("Setpoint", Table.HOLDING_REGISTERS, 0, "INT"),
    Binding("Level", Table.HOLDING_REGISTERS, 2, "REAL"),
    Binding("Total", Table.INPUT_REGISTERS, 0, "DINT", WordOrder.LITTLE_ENDIAN),
]


@dataclass
class Image:
    """Stands where the scan engine stands: publishes snapshots, applies queued writes at a 'scan boundary'."""

    snapshot: Snapshot
    writes: WriteQueue

    def boundary(self) -> None:
        values = dict(self.snapshot.values)
        applied = self.snapshot.applied_write_id
        for write_id, path, value in self.writes.drain():
            values[path] = value
            applied = write_id
        self.snapshot = Snapshot.of(self.snapshot.seq + 1, values, applied, PlcState.RUNNING, "sha256:test")


@pytest.fixture
async def served() -> AsyncIterator[tuple[Image, ModbusServer]]:
    values = {"Running": True, "Alarm": False, "Setpoint": -7, "Level": 12.5, "Total": 70000}
    image = Image(Snapshot.of(1, values, 0, PlcState.RUNNING, "sha256:test"), WriteQueue())
    requests: list[tuple[int, str]] = []
    server = ModbusServer(
        BINDINGS,
        lambda: image.snapshot,
        image.writes,
        host="127.0.0.1",
        port=free_port(),
        on_request=lambda fc, result: requests.append((fc, result)),
    )
    await server.start()
    server.requests = requests  # type: ignore[attr-defined]
    yield image, server
    await server.stop()


async def connect(server: ModbusServer) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=0)
    assert await client.connect()
    return client


async def test_reads_each_table_with_the_variables_types(served: tuple[Image, ModbusServer]) -> None:
    _, server = served
    client = await connect(server)
    try:
        assert (await client.read_coils(0, count=1)).bits[0] is True
        assert (await client.read_discrete_inputs(3, count=1)).bits[0] is False
        registers = (await client.read_holding_registers(0, count=1)).registers
        assert client.convert_from_registers(registers, client.DATATYPE.INT16) == -7
        level = (await client.read_holding_registers(2, count=2)).registers
        assert client.convert_from_registers(level, client.DATATYPE.FLOAT32) == 12.5
        total = (await client.read_input_registers(0, count=2)).registers
        assert total == [70000 & 0xFFFF, 70000 >> 16]  # LittleEndian: low word first
    finally:
        client.close()


async def test_unmapped_addresses_and_read_only_tables_answer_exceptions(served: tuple[Image, ModbusServer]) -> None:
    _, server = served
    client = await connect(server)
    try:
        gap = await client.read_holding_registers(1, count=1)
        assert gap.isError() and gap.exception_code == 2  # ILLEGAL DATA ADDRESS
        past = await client.read_holding_registers(3, count=2)  # the second half of Level, then nothing
        assert past.isError() and past.exception_code == 2
        assert (await client.read_coils(1, count=1)).exception_code == 2
    finally:
        client.close()
    assert (3, "exception_2") in server.requests  # type: ignore[attr-defined]


async def test_writes_land_at_the_next_scan_boundary(served: tuple[Image, ModbusServer]) -> None:
    image, server = served
    client = await connect(server)
    try:
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
    finally:
        client.close()


async def test_writing_a_read_only_or_unmapped_address_is_refused(served: tuple[Image, ModbusServer]) -> None:
    image, server = served
    client = await connect(server)
    try:
        assert (await client.write_register(1, 5)).exception_code == 2
        assert (await client.write_coil(7, True)).exception_code == 2
    finally:
        client.close()
    assert image.writes.drain() == []


def mbap(transaction: int, pdu: bytes, unit: int = 1, protocol: int = 0, length: int | None = None) -> bytes:
    return struct.pack(">HHHB", transaction, protocol, len(pdu) + 1 if length is None else length, unit) + pdu


def raw_exchange(port: int, frame: bytes, expect_reply: bool, timeout: float = 1.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(frame)
        sock.settimeout(timeout)
        try:
            return sock.recv(260)
        except (TimeoutError, ConnectionResetError):
            if expect_reply:
                raise
            return b""


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
async def test_malformed_frames_never_stop_the_server(
    served: tuple[Image, ModbusServer], name: str, frame: bytes
) -> None:
    _, server = served
    healthy = await connect(server)  # a client connected before, during and after the bad frame
    try:
        reply = await asyncio.to_thread(raw_exchange, server.port, frame, False)
        if reply:
            assert len(reply) >= 8, f"{name}: reply is not a Modbus frame: {reply!r}"
        assert (await healthy.read_holding_registers(0, count=1)).registers == [0xFFF9]
        fresh = await connect(server)
        try:
            assert not (await fresh.read_coils(0, count=1)).isError()
        finally:
            fresh.close()
    finally:
        healthy.close()


async def test_unknown_function_code_answers_illegal_function(served: tuple[Image, ModbusServer]) -> None:
    _, server = served
    reply = await asyncio.to_thread(raw_exchange, server.port, mbap(9, b"\x5b\x00\x00\x00\x01"), True)
    transaction, protocol, _, unit, function, code = struct.unpack(">HHHBBB", reply[:9])
    assert (transaction, protocol, unit, function, code) == (9, 0, 1, 0x5B | 0x80, 1)


async def test_other_unit_ids_are_refused_with_an_exception(served: tuple[Image, ModbusServer]) -> None:
    _, server = served
    client = await connect(server)
    try:
        response = await client.read_holding_registers(0, count=1, device_id=9)
        assert response.isError() and response.exception_code == 11  # GATEWAY TARGET DEVICE FAILED TO RESPOND
    finally:
        client.close()
