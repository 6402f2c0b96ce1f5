"""The Modbus server against the Modbus Application Protocol Specification v1.1b3, function code by function code.

For every function code the server serves: a normal request, each quantity just outside its limits (exception 3,
ILLEGAL DATA VALUE), a quantity at its limit over unmapped addresses and an unmapped address (exception 2,
ILLEGAL DATA ADDRESS); then function codes it does not serve (exception 1, ILLEGAL FUNCTION). One table, one
running server, one real client (pymodbus); raw frames where pymodbus refuses to send the request.

mbpoll (a libmodbus client, test-only: `apt-get install mbpoll`) reads and writes the same server with its
default settings, and with the unit ids of a device addressed directly over TCP.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ModbusPDU

from shopfloor_vplc.modbus_codec import Binding, Table
from tests.integration.vplc.test_modbus_server import Raw, client_of, raw, serving

pytestmark = pytest.mark.timeout(60)  # the backstop; each test has its own asyncio timeout

TIMEOUT_S = 20.0

# Four of each, at 0..3: anything from 4 up is unmapped.
BINDINGS = [
    *(Binding(f"C{n}", Table.COILS, n, "BOOL") for n in range(4)),
    *(Binding(f"D{n}", Table.DISCRETE_INPUTS, n, "BOOL") for n in range(4)),
    *(Binding(f"H{n}", Table.HOLDING_REGISTERS, n, "INT") for n in range(4)),
    *(Binding(f"I{n}", Table.INPUT_REGISTERS, n, "UINT") for n in range(4)),
]

OK, FUNCTION, ADDRESS, VALUE = 0, 1, 2, 3
UNMAPPED = 100

ClientCall = Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]


@dataclass(frozen=True)
class Case:
    name: str
    request: ClientCall | bytes  # a pymodbus client call, or a raw PDU (function code first)
    expected: int  # 0: a normal response, else the exception code


def pdu(function: int, fmt: str = "", *values: int, data: bytes = b"") -> bytes:
    return bytes([function]) + struct.pack(f">{fmt}", *values) + data


def write_coils_pdu(address: int, count: int) -> bytes:
    byte_count = (count + 7) // 8
    return pdu(15, "HHB", address, count, byte_count, data=bytes(byte_count))


def write_registers_pdu(address: int, count: int, byte_count: int | None = None, data: int | None = None) -> bytes:
    byte_count = 2 * count if byte_count is None else byte_count
    return pdu(16, "HHB", address, count, byte_count, data=bytes(byte_count if data is None else data))


def read_write_pdu(read: tuple[int, int], write: tuple[int, int], data: int | None = None) -> bytes:
    byte_count = 2 * write[1]
    return pdu(23, "HHHHB", *read, *write, byte_count, data=bytes(byte_count if data is None else data))


def reads(function: int, read: str, most: int, malformed: tuple[str, bytes]) -> list[Case]:
    """The cases of one read function: `most` is the largest quantity the spec allows (2000 bits, 125 registers)."""

    def call(address: int, count: int) -> ClientCall:
        return lambda c: getattr(c, read)(address, count=count)

    return [
        Case(f"FC{function} reads", call(0, 4), OK),
        Case(f"FC{function} quantity 0", pdu(function, "HH", 0, 0), VALUE),
        Case(f"FC{function} quantity {most + 1}", pdu(function, "HH", 0, most + 1), VALUE),
        Case(f"FC{function} quantity {most}, unmapped", call(0, most), ADDRESS),
        Case(f"FC{function} unmapped address", call(UNMAPPED, 1), ADDRESS),
        Case(f"FC{function} past address 65535", pdu(function, "HH", 0xFFFF, 2), ADDRESS),
        Case(f"FC{function} {malformed[0]}", malformed[1], VALUE),
    ]


def bit_reads(function: int, read: str) -> list[Case]:
    return reads(function, read, 2000, ("PDU too short", pdu(function, "H", 0)))


def register_reads(function: int, read: str) -> list[Case]:
    return reads(function, read, 125, ("PDU too long", pdu(function, "HHB", 0, 1, 0)))


CASES: list[Case] = [
    *bit_reads(1, "read_coils"),
    *bit_reads(2, "read_discrete_inputs"),
    *register_reads(3, "read_holding_registers"),
    *register_reads(4, "read_input_registers"),
    # FC5 has no quantity: its value must be 0x0000 or 0xFF00.
    Case("FC5 writes", lambda c: c.write_coil(0, True), OK),
    Case("FC5 value 0x1234", pdu(5, "HH", 0, 0x1234), VALUE),
    Case("FC5 unmapped address", lambda c: c.write_coil(UNMAPPED, True), ADDRESS),
    Case("FC5 a discrete input's address is no coil", lambda c: c.write_coil(4, True), ADDRESS),
    # FC6 has no quantity, and any 16-bit value is legal.
    Case("FC6 writes", lambda c: c.write_register(0, 0xFFFF), OK),
    Case("FC6 unmapped address", lambda c: c.write_register(UNMAPPED, 1), ADDRESS),
    Case("FC6 PDU too short", pdu(6, "H", 0), VALUE),
    Case("FC15 writes", lambda c: c.write_coils(0, [True, False, True, False]), OK),
    Case("FC15 quantity 0", pdu(15, "HHB", 0, 0, 0), VALUE),
    Case("FC15 quantity 1969", write_coils_pdu(0, 1969), VALUE),
    Case("FC15 quantity 1968, unmapped", write_coils_pdu(0, 1968), ADDRESS),
    Case("FC15 byte count not N", pdu(15, "HHB", 0, 4, 2, data=b"\x00\x00"), VALUE),
    Case("FC15 fewer bytes than its byte count", pdu(15, "HHB", 0, 16, 2, data=b"\x00"), VALUE),
    Case("FC15 unmapped address", lambda c: c.write_coils(UNMAPPED, [True]), ADDRESS),
    Case("FC16 writes", lambda c: c.write_registers(0, [1, 2, 3, 4]), OK),
    Case("FC16 quantity 0", pdu(16, "HHB", 0, 0, 0), VALUE),
    # 124 registers do not fit in a Modbus/TCP frame (253-byte PDU): the quantity is refused before the data.
    Case("FC16 quantity 124", write_registers_pdu(0, 124, byte_count=248, data=2), VALUE),
    Case("FC16 quantity 123, unmapped", write_registers_pdu(0, 123), ADDRESS),
    Case("FC16 byte count not 2 x N", write_registers_pdu(0, 2, byte_count=3, data=3), VALUE),
    Case("FC16 unmapped address", lambda c: c.write_registers(UNMAPPED, [1]), ADDRESS),
    # FC22 has no quantity.
    Case("FC22 masks", lambda c: c.mask_write_register(address=1, and_mask=0xFF00, or_mask=0x0012), OK),
    Case("FC22 unmapped address", lambda c: c.mask_write_register(address=UNMAPPED), ADDRESS),
    Case("FC22 PDU too short", pdu(22, "HH", 0, 0xFFFF), VALUE),
    Case(
        "FC23 writes then reads",
        lambda c: c.readwrite_registers(read_address=0, read_count=4, write_address=2, values=[5, 6]),
        OK,
    ),
    Case("FC23 read quantity 0", read_write_pdu((0, 0), (0, 1)), VALUE),
    Case("FC23 read quantity 126", read_write_pdu((0, 126), (0, 1)), VALUE),
    Case("FC23 read quantity 125, unmapped", read_write_pdu((0, 125), (0, 1)), ADDRESS),
    Case("FC23 write quantity 0", read_write_pdu((0, 1), (0, 0)), VALUE),
    Case("FC23 write quantity 122", read_write_pdu((0, 1), (0, 122), data=2), VALUE),  # cannot fit a frame
    Case("FC23 write quantity 121, unmapped", read_write_pdu((0, 1), (0, 121)), ADDRESS),
    Case("FC23 byte count not 2 x N", pdu(23, "HHHHB", 0, 1, 0, 1, 4, data=bytes(4)), VALUE),
    Case(
        "FC23 unmapped read address",
        lambda c: c.readwrite_registers(read_address=UNMAPPED, read_count=1, write_address=0, values=[1]),
        ADDRESS,
    ),
    Case(
        "FC23 unmapped write address",
        lambda c: c.readwrite_registers(read_address=0, read_count=1, write_address=UNMAPPED, values=[1]),
        ADDRESS,
    ),
    # FC17 has neither quantity nor address.
    Case("FC17 reports", lambda c: c.report_device_id(), OK),
    Case("FC17 with data", pdu(17, "B", 0), VALUE),
    # FC43/14: the Read Device ID code must be 1..4; the object id is the address.
    Case("FC43/14 basic", lambda c: c.read_device_information(read_code=1), OK),
    Case("FC43/14 one object", lambda c: c.read_device_information(read_code=4, object_id=2), OK),
    Case("FC43/14 read code 0", pdu(43, "BBB", 14, 0, 0), VALUE),
    Case("FC43/14 read code 5", pdu(43, "BBB", 14, 5, 0), VALUE),
    Case(
        "FC43/14 object that does not exist", lambda c: c.read_device_information(read_code=4, object_id=0x80), ADDRESS
    ),
    Case("FC43/14 PDU too short", pdu(43, "BB", 14, 1), VALUE),
    # Function codes not served: serial-line diagnostics, files, FIFOs, CANopen, unassigned, exception codes.
    Case("FC7 (serial line only)", lambda c: c.read_exception_status(), FUNCTION),
    Case("FC8 (serial line only)", lambda c: c.diag_query_data(b"\x00\x00"), FUNCTION),
    Case("FC11 (serial line only)", lambda c: c.diag_get_comm_event_counter(), FUNCTION),
    Case("FC12 (serial line only)", lambda c: c.diag_get_comm_event_log(), FUNCTION),
    Case("FC20 read file record", pdu(20, "BBHHH", 7, 6, 1, 0, 1), FUNCTION),
    Case("FC21 write file record", pdu(21, "BBHHHH", 9, 6, 1, 0, 1, 0), FUNCTION),
    Case("FC24 read FIFO queue", lambda c: c.read_fifo_queue(address=0), FUNCTION),
    Case("FC43/13 CANopen", pdu(43, "BB", 13, 0), FUNCTION),
    Case("FC0", pdu(0), FUNCTION),
    Case("FC91 unassigned", pdu(91, "HH", 0, 1), FUNCTION),
    Case("FC127", pdu(127), FUNCTION),
    Case("FC131 (an exception code)", pdu(0x83, "B", 2), FUNCTION),
]


async def outcome(case: Case, client: AsyncModbusTcpClient, conn: Raw, transaction: int) -> tuple[int, str]:
    """(0 or the exception code, what the answer was)."""
    if isinstance(case.request, bytes):
        reply = await conn.ask(case.request, transaction=transaction)
        if reply.exception:
            assert reply.pdu[0] == (case.request[0] | 0x80) & 0xFF, f"{case.name}: function {reply.pdu[0]}"
        return reply.exception, reply.pdu.hex(" ")
    response = await case.request(client)
    return (response.exception_code if response.isError() else 0), str(response)


async def test_every_function_code_answers_the_specifications_exceptions() -> None:
    wrong = []
    async with (
        asyncio.timeout(TIMEOUT_S),
        serving(BINDINGS, plc_name="cell-7") as each,
        client_of(each.port) as client,
        raw(each.port) as conn,
    ):
        for transaction, case in enumerate(CASES, start=1):
            code, answer = await outcome(case, client, conn, transaction)
            if code != case.expected:
                wrong.append(f"{case.name}: expected {case.expected}, got {code} ({answer})")
    assert not wrong, "\n".join(wrong)
    # Every answer was counted by function code and result.
    assert len(each.requests) == len(CASES)
    assert (1, "exception_3") in each.requests and (91, "exception_1") in each.requests


# -- mbpoll, a libmodbus client


MBPOLL = shutil.which("mbpoll")


async def mbpoll(port: int, *options: str, write: tuple[str, ...] = ()) -> tuple[int, str]:
    """Run mbpoll once (-1) with 0-based addresses (-0), a 2 s timeout, `options`, then write `write` if given."""
    arguments = ["-1", "-0", "-o", "2", "-p", str(port), *options, "127.0.0.1", *(("--", *write) if write else ())]
    process = await asyncio.create_subprocess_exec(
        MBPOLL or "mbpoll", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def values(output: str) -> dict[int, str]:
    return {int(ref): value.strip() for ref, value in re.findall(r"^\[(\d+)\]:\s*(\S+)", output, re.MULTILINE)}


@pytest.mark.skipif(MBPOLL is None, reason="mbpoll is not installed (Debian: apt-get install mbpoll)")
async def test_mbpoll_reads_and_writes_with_its_default_unit_id() -> None:
    async with asyncio.timeout(TIMEOUT_S), serving(BINDINGS) as each:  # unitId 1, the API's default
        each.image.boundary()
        code, output = await mbpoll(each.port, "-t", "4", "-r", "0", write=("12", "300"))  # mbpoll's default: unit 1
        assert code == 0, output
        each.image.boundary()
        code, output = await mbpoll(each.port, "-t", "4", "-r", "0", "-c", "2")
        assert code == 0 and values(output) == {0: "12", 1: "300"}, output
        code, output = await mbpoll(each.port, "-t", "0", "-r", "0", "-c", "4")
        assert code == 0 and values(output) == {0: "0", 1: "0", 2: "0", 3: "0"}, output


@pytest.mark.skipif(MBPOLL is None, reason="mbpoll is not installed (Debian: apt-get install mbpoll)")
@pytest.mark.parametrize(("unit", "answered"), [("17", True), ("255", True), ("0", True), (None, False)])
async def test_mbpoll_reaches_a_device_addressed_directly(unit: str | None, answered: bool) -> None:
    """A server configured with unitId 17 answers 17, 255 and 0; mbpoll's default (1) gets exception 11."""
    unit_option = ("-a", unit) if unit is not None else ()
    async with asyncio.timeout(TIMEOUT_S), serving(BINDINGS, unit_id=17) as each:
        code, output = await mbpoll(each.port, *unit_option, "-t", "3", "-r", "0", "-c", "4")
    if answered:
        assert code == 0 and values(output) == {0: "0", 1: "0", 2: "0", 3: "0"}, output
    else:
        assert code != 0 and "Target device failed to respond" in output, output  # libmodbus's EMBXGTAR
