"""The Modbus TCP server: the process image served to SCADA/HMI clients.

Framing and function codes follow the Modbus Application Protocol Specification v1.1b3 and the Modbus/TCP
implementation guide v1.0b, on a plain asyncio protocol (no pymodbus here: its server answered exception 1 for
out-of-range quantities, logged an ERROR with a frame dump for each bad frame, stalled a connection on a frame
with a non-zero protocol id, and reported itself as "Pymodbus").

- Each request is checked in the specification's order: unit id (exception 11 when not served), function code (1),
  structure and quantity (3), address range and mapping (2), then executed; a write while the runtime does not
  hold its lock answers 6 (server device busy).
- Reads come from the latest published snapshot; writes to coils and holding registers are queued for the next
  scan boundary, and read back as written until a snapshot shows them applied.
- Frames that are not Modbus/TCP never stop the server: a non-zero protocol id is discarded (no answer, as the
  implementation guide says), an MBAP length outside 2..254 closes that connection (the stream cannot be
  resynchronised). Bad frames and unknown unit ids are counted by reason and logged at most once per reason per
  interval, with the count.
- Requests are answered in arrival order on each connection, several outstanding ones included (pipelining).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shopfloor_vplc.image import PlcState, Snapshot, WriteRefused, WriteSink
from shopfloor_vplc.modbus_codec import AddressMap, Binding, Table

log = logging.getLogger(__name__)

RequestObserver = Callable[[int, str], None]  # (function code, "ok" | "exception_<code>")
BadRequestObserver = Callable[[str], None]  # (reason, one of BAD_REQUEST_REASONS)

# Unit ids a device addressed directly over TCP is called with (implementation guide 4.4.1.2: 0xFF, "the value 0
# is also accepted"), answered besides the configured one.
DIRECT_UNIT_IDS = (0, 255)

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE, DEVICE_BUSY = 1, 2, 3, 4, 6
GATEWAY_TARGET_FAILED = 11

# Quantity limits of the specification, per function code.
MAX_READ_BITS = 2000  # FC1, FC2 (0x07D0)
MAX_READ_REGISTERS = 125  # FC3, FC4, FC23 read (0x007D)
MAX_WRITE_COILS = 1968  # FC15 (0x07B0)
MAX_WRITE_REGISTERS = 123  # FC16 (0x007B)
MAX_READ_WRITE_WRITE = 121  # FC23 write (0x0079)
MAX_PDU = 253

VENDOR_NAME = "Shopfloor"
PRODUCT_CODE = "shopfloor-vplc"
PRODUCT_NAME = "Shopfloor vPLC"

# Why a frame was counted in shopfloor_vplc_modbus_bad_requests_total (a bounded set), and how the log says it:
# (one of them, what the server did), many of them.
BAD_REQUEST_REASONS: dict[str, tuple[str, str]] = {
    "protocol_id": (
        "a frame with a protocol identifier other than 0 (not Modbus/TCP), discarded without an answer",
        "frames with a protocol identifier other than 0",
    ),
    "length": ("a frame with an MBAP length outside 2..254, connection closed", "frames with an impossible length"),
    "malformed": (
        "a request whose data does not match its function code, answered with exception 3",
        "malformed requests",
    ),
    "unit_id": (
        "a request for a unit id this server does not serve, answered with exception 11",
        "requests for unit ids not served",
    ),
    "internal": ("a request that failed inside the server, answered with exception 4", "failed requests"),
}


class _Refused(Exception):
    """Ends a request with a Modbus exception response."""

    def __init__(self, code: int, bad_reason: str = "", detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.bad_reason = bad_reason
        self.detail = detail


class ProcessImageStore:
    """The four tables over the scan's snapshots and write queue."""

    def __init__(self, address_map: AddressMap, snapshot: Callable[[], Snapshot], writes: WriteSink) -> None:
        self.address_map = address_map
        self._snapshot = snapshot
        self._writes = writes
        self._pending: dict[tuple[Table, int], tuple[int, int]] = {}
        # Encoded words of the current snapshot: a snapshot serves many requests between two scans.
        self._encoded_seq = -1
        self._encoded: dict[tuple[Table, int], int] = {}

    def read(self, table: Table, address: int, count: int) -> list[int]:
        """The words (0/1 for bit tables) at address..address+count-1; exception 2 if any is not mapped."""
        snapshot = self._snapshot()
        self._forget_applied(snapshot)
        words: list[int] = []
        for addr in range(address, address + count):
            word = self._read_word(snapshot, table, addr)
            if word is None:
                raise _Refused(ILLEGAL_ADDRESS)
            words.append(word)
        return words

    def check_mapped(self, table: Table, address: int, count: int) -> None:
        for addr in range(address, address + count):
            if self.address_map.cell(table, addr) is None:
                raise _Refused(ILLEGAL_ADDRESS)

    def write(self, table: Table, address: int, values: Sequence[int]) -> None:
        """Queue the words (0/1 for coils) for the next scan boundary, all or none: exception 2 (not mapped), 3 (the
        variable's type cannot hold the value) or 6 (this runtime does not hold its lock)."""
        snapshot = self._snapshot()
        touched: dict[str, tuple[Binding, list[int]]] = {}
        for addr, value in zip(range(address, address + len(values)), values, strict=True):
            cell = self.address_map.cell(table, addr)
            if cell is None:
                raise _Refused(ILLEGAL_ADDRESS)
            binding, offset = cell
            if binding.variable not in touched:
                touched[binding.variable] = (binding, self._current_words(snapshot, binding))
            touched[binding.variable][1][offset] = int(value) & 0xFFFF
        decoded: list[tuple[Binding, list[int], Any]] = []
        for binding, words in touched.values():
            try:
                decoded.append((binding, words, binding.decode(words)))
            except (ValueError, OverflowError):
                raise _Refused(ILLEGAL_VALUE) from None
        for binding, words, value in decoded:
            try:
                write_id = self._writes.put(binding.variable, value)
            except WriteRefused:
                # Not the runtime that drives the process now (fenced, or waiting for its lock): "server busy".
                raise _Refused(DEVICE_BUSY) from None
            for offset, word in enumerate(words):
                self._pending[(binding.table, binding.address + offset)] = (write_id, word)

    def _current_words(self, snapshot: Snapshot, binding: Binding) -> list[int]:
        return [
            self._read_word(snapshot, binding.table, binding.address + offset) or 0 for offset in range(binding.width)
        ]

    def _read_word(self, snapshot: Snapshot, table: Table, address: int) -> int | None:
        pending = self._pending.get((table, address))
        if pending is not None:
            return pending[1]
        if snapshot.seq != self._encoded_seq:
            self._encoded_seq, self._encoded = snapshot.seq, {}
        word = self._encoded.get((table, address))
        if word is not None:
            return word
        cell = self.address_map.cell(table, address)
        if cell is None:
            return None
        binding, offset = cell
        value = snapshot.values.get(binding.variable)
        if value is None:
            return 0  # not published yet (the runtime is loading)
        words = binding.encode(value)
        for index, each in enumerate(words):
            self._encoded[(table, binding.address + index)] = each
        return words[offset]

    def _forget_applied(self, snapshot: Snapshot) -> None:
        if self._pending:
            applied = snapshot.applied_write_id
            self._pending = {key: entry for key, entry in self._pending.items() if entry[0] > applied}


@dataclass
class _Window:
    ends: float
    suppressed: int = 0
    peer: str = ""
    detail: str = ""
    timer: asyncio.TimerHandle | None = None


class BadRequestLog:
    """At most one log line per reason per `interval` seconds: the first one at once, then one line at the end of
    each interval that saw more, with their count (records carry `reason` and `count` attributes)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._windows: dict[str, _Window] = {}

    def note(self, reason: str, peer: str, detail: str) -> None:
        now = time.monotonic()
        window = self._windows.get(reason)
        if window is not None and now >= window.ends and window.suppressed:
            self._summarize(reason)  # its timer is due but has not run yet
            window = self._windows[reason]
        if window is not None and now < window.ends:
            window.suppressed += 1
            window.peer, window.detail = peer, detail
            return
        if window is not None and window.timer is not None:
            window.timer.cancel()
        log.warning(
            'Modbus client %s: %s (%s); more are counted in shopfloor_vplc_modbus_bad_requests_total{reason="%s"} '
            "and logged at most every %g s",
            peer, BAD_REQUEST_REASONS[reason][0], detail, reason, self.interval,
            extra={"reason": reason, "count": 1},
        )  # fmt: skip
        self._open(reason)

    def _open(self, reason: str) -> None:
        window = self._windows[reason] = _Window(time.monotonic() + self.interval)
        window.timer = asyncio.get_running_loop().call_later(self.interval, self._summarize, reason)

    def _summarize(self, reason: str) -> None:
        window = self._windows[reason]
        if window.timer is not None:
            window.timer.cancel()
        if not window.suppressed:
            window.timer = None
            return  # a quiet interval: the next one is logged at once
        log.warning(
            "Modbus: %d more %s in the last %g s, the last from %s (%s)",
            window.suppressed, BAD_REQUEST_REASONS[reason][1], self.interval, window.peer, window.detail,
            extra={"reason": reason, "count": window.suppressed},
        )  # fmt: skip
        self._open(reason)

    def close(self) -> None:
        """Log what the open intervals counted (the server stops)."""
        for reason, window in self._windows.items():
            if window.timer is not None:
                window.timer.cancel()
            if window.suppressed:
                log.warning(
                    "Modbus: %d more %s before the server stopped, the last from %s (%s)",
                    window.suppressed, BAD_REQUEST_REASONS[reason][1], window.peer, window.detail,
                    extra={"reason": reason, "count": window.suppressed},
                )  # fmt: skip
        self._windows.clear()


def _exception_pdu(function: int, code: int) -> bytes:
    return bytes([(function | 0x80) & 0xFF, code])


def _require_length(pdu: bytes, length: int) -> None:
    if len(pdu) != length:
        raise _Refused(ILLEGAL_VALUE, "malformed", f"function {pdu[0]}: {len(pdu)} bytes, {length} expected")


def _check_quantity(count: int, limit: int) -> None:
    if not 1 <= count <= limit:
        raise _Refused(ILLEGAL_VALUE)


def _check_range(address: int, count: int) -> None:
    if address + count > 0x10000:
        raise _Refused(ILLEGAL_ADDRESS)


def _pack_bits(bits: Sequence[int]) -> bytes:
    packed = bytearray((len(bits) + 7) // 8)
    for index, bit in enumerate(bits):
        if bit:
            packed[index // 8] |= 1 << (index % 8)
    return bytes(packed)


def _unpack_bits(data: bytes, count: int) -> list[int]:
    return [(data[index // 8] >> (index % 8)) & 1 for index in range(count)]


def _pack_words(words: Sequence[int]) -> bytes:
    return struct.pack(f">{len(words)}H", *words)


_BIT_READS = {1: Table.COILS, 2: Table.DISCRETE_INPUTS}
_REGISTER_READS = {3: Table.HOLDING_REGISTERS, 4: Table.INPUT_REGISTERS}

# Read Device Identification (FC43, MEI type 14): stream categories and the conformity level (0x82: regular
# identification, stream and individual access).
_BASIC_OBJECTS = (0x00, 0x01, 0x02)
_REGULAR_OBJECTS = (0x00, 0x01, 0x02, 0x04, 0x06)
_CONFORMITY = 0x82


class ModbusServer:
    def __init__(
        self,
        bindings: list[Binding],
        snapshot: Callable[[], Snapshot],
        writes: WriteSink,
        *,
        host: str,
        port: int,
        unit_id: int = 1,
        plc_name: str = "",
        on_request: RequestObserver | None = None,
        on_bad_request: BadRequestObserver | None = None,
        log_interval: float = 60.0,
    ) -> None:
        self.store = ProcessImageStore(AddressMap(bindings), snapshot, writes)
        self._snapshot = snapshot
        self.host, self.port = host, port
        self.unit_id = unit_id
        self.unit_ids = frozenset((unit_id, *DIRECT_UNIT_IDS))
        self.plc_name = plc_name
        self._on_request = on_request
        self._on_bad_request = on_bad_request
        self.bad_request_log = BadRequestLog(log_interval)
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._functions: dict[int, Callable[[bytes], bytes]] = {
            1: self._read_bits,
            2: self._read_bits,
            3: self._read_registers,
            4: self._read_registers,
            5: self._write_coil,
            6: self._write_register,
            15: self._write_coils,
            16: self._write_registers,
            17: self._report_server_id,
            22: self._mask_write_register,
            23: self._read_write_registers,
            43: self._encapsulated_interface,
        }

    # -- serving

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port)
        if self.port == 0:
            self.port = self.bound_port()

    def bound_port(self) -> int:
        sockets = self._server.sockets if self._server else ()
        return int(sockets[0].getsockname()[1]) if sockets else self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection.close()
            await self._server.wait_closed()
            self._server = None
        self.bad_request_log.close()

    def bad_request(self, reason: str, peer: str, detail: str) -> None:
        if self._on_bad_request is not None:
            self._on_bad_request(reason)
        self.bad_request_log.note(reason, peer, detail)

    def answer(self, unit: int, pdu: bytes, peer: str) -> bytes:
        """The response PDU to one request PDU (never empty: the MBAP length was checked)."""
        function = pdu[0]
        try:
            if unit not in self.unit_ids:
                raise _Refused(GATEWAY_TARGET_FAILED, "unit_id", f"unit {unit}; served: {self.unit_id}, 0 and 255")
            handler = self._functions.get(function)
            if handler is None:
                raise _Refused(ILLEGAL_FUNCTION)
            response = handler(pdu)
            result = "ok"
        except _Refused as refused:
            if refused.bad_reason:
                self.bad_request(refused.bad_reason, peer, refused.detail)
            response, result = _exception_pdu(function, refused.code), f"exception_{refused.code}"
        except Exception as exc:  # a bug here must not end the connection, nor flood the log
            log.debug("Modbus request %s failed", pdu.hex(" "), exc_info=True)
            self.bad_request("internal", peer, f"function {function}: {type(exc).__name__}: {exc}")
            response, result = _exception_pdu(function, DEVICE_FAILURE), f"exception_{DEVICE_FAILURE}"
        if self._on_request is not None:
            self._on_request(function, result)
        return response

    # -- function codes (each gets the whole PDU, function code first, and returns the response PDU)

    def _read_bits(self, pdu: bytes) -> bytes:
        _require_length(pdu, 5)
        address, count = struct.unpack_from(">HH", pdu, 1)
        _check_quantity(count, MAX_READ_BITS)
        _check_range(address, count)
        packed = _pack_bits(self.store.read(_BIT_READS[pdu[0]], address, count))
        return pdu[:1] + bytes([len(packed)]) + packed

    def _read_registers(self, pdu: bytes) -> bytes:
        _require_length(pdu, 5)
        address, count = struct.unpack_from(">HH", pdu, 1)
        _check_quantity(count, MAX_READ_REGISTERS)
        _check_range(address, count)
        words = self.store.read(_REGISTER_READS[pdu[0]], address, count)
        return pdu[:1] + bytes([2 * count]) + _pack_words(words)

    def _write_coil(self, pdu: bytes) -> bytes:
        _require_length(pdu, 5)
        address, value = struct.unpack_from(">HH", pdu, 1)
        if value not in (0x0000, 0xFF00):
            raise _Refused(ILLEGAL_VALUE)
        self.store.write(Table.COILS, address, [1 if value else 0])
        return pdu

    def _write_register(self, pdu: bytes) -> bytes:
        _require_length(pdu, 5)
        address, value = struct.unpack_from(">HH", pdu, 1)
        self.store.write(Table.HOLDING_REGISTERS, address, [value])
        return pdu

    def _write_coils(self, pdu: bytes) -> bytes:
        if len(pdu) < 6:
            _require_length(pdu, 6)
        address, count, byte_count = struct.unpack_from(">HHB", pdu, 1)
        _check_quantity(count, MAX_WRITE_COILS)
        if byte_count != (count + 7) // 8 or len(pdu) != 6 + byte_count:
            raise _Refused(ILLEGAL_VALUE, "malformed", f"function 15: {count} coils, byte count {byte_count}")
        _check_range(address, count)
        self.store.write(Table.COILS, address, _unpack_bits(pdu[6:], count))
        return pdu[:5]

    def _write_registers(self, pdu: bytes) -> bytes:
        if len(pdu) < 6:
            _require_length(pdu, 6)
        address, count, byte_count = struct.unpack_from(">HHB", pdu, 1)
        _check_quantity(count, MAX_WRITE_REGISTERS)
        if byte_count != 2 * count or len(pdu) != 6 + byte_count:
            raise _Refused(ILLEGAL_VALUE, "malformed", f"function 16: {count} registers, byte count {byte_count}")
        _check_range(address, count)
        self.store.write(Table.HOLDING_REGISTERS, address, struct.unpack_from(f">{count}H", pdu, 6))
        return pdu[:5]

    def _mask_write_register(self, pdu: bytes) -> bytes:
        _require_length(pdu, 7)
        address, and_mask, or_mask = struct.unpack_from(">HHH", pdu, 1)
        (current,) = self.store.read(Table.HOLDING_REGISTERS, address, 1)
        self.store.write(Table.HOLDING_REGISTERS, address, [(current & and_mask) | (or_mask & ~and_mask & 0xFFFF)])
        return pdu

    def _read_write_registers(self, pdu: bytes) -> bytes:
        if len(pdu) < 10:
            _require_length(pdu, 10)
        read_address, read_count, write_address, write_count, byte_count = struct.unpack_from(">HHHHB", pdu, 1)
        _check_quantity(read_count, MAX_READ_REGISTERS)
        _check_quantity(write_count, MAX_READ_WRITE_WRITE)
        if byte_count != 2 * write_count or len(pdu) != 10 + byte_count:
            raise _Refused(ILLEGAL_VALUE, "malformed", f"function 23: {write_count} registers, byte count {byte_count}")
        _check_range(read_address, read_count)
        _check_range(write_address, write_count)
        # Both ranges are checked before anything is written: an exception leaves the process image as it was.
        self.store.check_mapped(Table.HOLDING_REGISTERS, read_address, read_count)
        self.store.write(Table.HOLDING_REGISTERS, write_address, struct.unpack_from(f">{write_count}H", pdu, 10))
        words = self.store.read(Table.HOLDING_REGISTERS, read_address, read_count)
        return pdu[:1] + bytes([2 * read_count]) + _pack_words(words)

    # -- identity

    def identity(self) -> dict[int, bytes]:
        """The Read Device Identification objects: vendor, product code, the program revision as the revision,
        product name and the PLC's name as the user application name."""
        revision = self._snapshot().revision or "none"
        objects = {
            0x00: VENDOR_NAME,
            0x01: PRODUCT_CODE,
            0x02: revision,
            0x04: PRODUCT_NAME,
        }
        if self.plc_name:
            objects[0x06] = self.plc_name
        return {key: value.encode("utf-8", "replace")[: MAX_PDU - 9] for key, value in objects.items()}

    def server_id_text(self) -> str:
        parts = [PRODUCT_NAME, self.plc_name, self._snapshot().revision or "none"]
        return " ".join(part for part in parts if part)

    def _report_server_id(self, pdu: bytes) -> bytes:
        """Byte count, server id (the configured unit id), run indicator (0xFF while Running), then the text."""
        _require_length(pdu, 1)
        running = self._snapshot().state is PlcState.RUNNING
        data = bytes([self.unit_id, 0xFF if running else 0x00]) + self.server_id_text().encode("utf-8", "replace")
        data = data[: MAX_PDU - 2]
        return pdu[:1] + bytes([len(data)]) + data

    def _encapsulated_interface(self, pdu: bytes) -> bytes:
        if len(pdu) < 2 or pdu[1] != 0x0E:
            raise _Refused(ILLEGAL_FUNCTION)  # only Read Device Identification (CANopen, type 13, is not served)
        _require_length(pdu, 4)
        read_code, object_id = pdu[2], pdu[3]
        if not 1 <= read_code <= 4:
            raise _Refused(ILLEGAL_VALUE)
        objects = self.identity()
        if read_code == 4:
            if object_id not in objects:
                raise _Refused(ILLEGAL_ADDRESS)
            ids: Sequence[int] = [object_id]
        else:
            # A device asked above its conformity level answers at its own level (extended: regular).
            category = [key for key in (_BASIC_OBJECTS if read_code == 1 else _REGULAR_OBJECTS) if key in objects]
            # An object id that is not in the category restarts the stream at its beginning.
            ids = category[category.index(object_id) :] if object_id in category else category
        body = b""
        more, next_id, count = 0x00, 0x00, 0
        for key in ids:
            encoded = bytes([key, len(objects[key])]) + objects[key]
            if 7 + len(body) + len(encoded) > MAX_PDU:
                more, next_id = 0xFF, key
                break
            body += encoded
            count += 1
        return bytes([0x2B, 0x0E, read_code, _CONFORMITY, more, next_id, count]) + body


class _Connection(asyncio.Protocol):
    """One client connection: splits the byte stream into Modbus/TCP frames and answers them in order."""

    def __init__(self, server: ModbusServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = f"{peer[0]}:{peer[1]}"
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        self.transport = None

    def pause_writing(self) -> None:
        # A client that sends requests and never reads the answers: stop reading until it does.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        replies: list[bytes] = []
        while len(buffer) >= 7 and self.transport is not None:
            transaction, protocol, length, unit = struct.unpack_from(">HHHB", buffer)
            if not 2 <= length <= MAX_PDU + 1:
                self.server.bad_request("length", self.peer, f"length {length}")
                buffer.clear()
                self._flush(replies)
                self.transport.close()
                return
            end = 6 + length
            if len(buffer) < end:
                break
            pdu = bytes(buffer[7:end])
            del buffer[:end]
            if protocol != 0:
                self.server.bad_request("protocol_id", self.peer, f"protocol id {protocol}")
                continue
            response = self.server.answer(unit, pdu, self.peer)
            replies.append(struct.pack(">HHHB", transaction, 0, len(response) + 1, unit) + response)
        self._flush(replies)

    def _flush(self, replies: list[bytes]) -> None:
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))
