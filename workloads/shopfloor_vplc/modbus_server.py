"""The Modbus TCP server: the process image served to SCADA/HMI clients. The only module that touches pymodbus's
server and datastore API (pinned at 3.16; its datastore classes change in 4.0).

Reads come from the latest published snapshot; writes to coils and holding registers are queued for the next scan
boundary, and read back as written until a snapshot shows them applied. Unmapped addresses answer ILLEGAL ADDRESS.
Malformed frames are pymodbus's framer's business; the tests in tests/integration/vplc hold it to never crashing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer

from shopfloor_vplc.image import Snapshot, WriteRefused, WriteSink
from shopfloor_vplc.modbus_codec import BIT_TABLES, AddressMap, Binding, Table

log = logging.getLogger(__name__)

_READ_TABLES = {1: Table.COILS, 2: Table.DISCRETE_INPUTS, 3: Table.HOLDING_REGISTERS, 4: Table.INPUT_REGISTERS}
_READ_TABLES.update({22: Table.HOLDING_REGISTERS, 23: Table.HOLDING_REGISTERS, 5: Table.COILS, 15: Table.COILS})
_READ_TABLES.update({6: Table.HOLDING_REGISTERS, 16: Table.HOLDING_REGISTERS})
_WRITE_TABLES = {5: Table.COILS, 15: Table.COILS, 6: Table.HOLDING_REGISTERS, 16: Table.HOLDING_REGISTERS}
_WRITE_TABLES.update({22: Table.HOLDING_REGISTERS, 23: Table.HOLDING_REGISTERS})

RequestObserver = Callable[[int, str], None]


class ProcessImageStore(ModbusServerContext):
    """pymodbus's datastore seam over the scan's snapshots and write queue (one unit id)."""

    def __init__(self, address_map: AddressMap, snapshot: Callable[[], Snapshot], writes: WriteSink, unit_id: int):
        # The base initialiser builds pymodbus's deprecated simulator tables; this store replaces them entirely.
        self.old_simulator = True  # tells pymodbus's server to call this object's async_getValues/async_setValues
        self.simdevices = []
        self.address_map = address_map
        self._snapshot = snapshot
        self._writes = writes
        self.unit_id = unit_id
        self._pending: dict[tuple[Table, int], tuple[int, int]] = {}
        # Encoded words of the current snapshot: a snapshot serves many requests between two scans.
        self._encoded_seq = -1
        self._encoded: dict[tuple[Table, int], int] = {}

    def device_ids(self) -> list[int]:
        return [self.unit_id]

    def _check_unit(self, device_id: int) -> None:
        if device_id not in (self.unit_id, 0):
            raise NoSuchIdException(f"unit id {device_id} is not served")

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        self._check_unit(device_id)
        table = _READ_TABLES.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        snapshot = self._snapshot()
        self._forget_applied(snapshot)
        words: list[int] = []
        for addr in range(address, address + count):
            word = self._read_word(snapshot, table, addr)
            if word is None:
                return ExcCodes.ILLEGAL_ADDRESS
            words.append(word)
        if table in BIT_TABLES:
            return [bool(w) for w in words]
        return words

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        self._check_unit(device_id)
        table = _WRITE_TABLES.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        snapshot = self._snapshot()
        touched: dict[str, tuple[Binding, list[int]]] = {}
        for addr, value in zip(range(address, address + len(values)), values, strict=True):
            cell = self.address_map.cell(table, addr)
            if cell is None:
                return ExcCodes.ILLEGAL_ADDRESS
            binding, offset = cell
            if binding.variable not in touched:
                touched[binding.variable] = (binding, self._current_words(snapshot, binding))
            touched[binding.variable][1][offset] = int(value) & 0xFFFF
        decoded: list[tuple[Binding, list[int], Any]] = []
        for binding, words in touched.values():
            try:
                decoded.append((binding, words, binding.decode(words)))
            except (ValueError, OverflowError):
                return ExcCodes.ILLEGAL_VALUE
        for binding, words, value in decoded:
            try:
                write_id = self._writes.put(binding.variable, value)
            except WriteRefused:
                # Not the runtime that drives the process now (fenced, or waiting for its lock): "server busy".
                return ExcCodes.DEVICE_BUSY
            for offset, word in enumerate(words):
                self._pending[(binding.table, binding.address + offset)] = (write_id, word)
        return None

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
        on_request: RequestObserver | None = None,
    ) -> None:
        self.store = ProcessImageStore(AddressMap(bindings), snapshot, writes, unit_id)
        self.host, self.port = host, port
        self._on_request = on_request
        self._server: ModbusTcpServer | None = None
        self._last_request_head = b""

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        """pymodbus 3.16 answers an unknown function code with function 0x80; put the request's code back.

        Such an answer is sent synchronously while the request is being received, so the last request seen is its.
        """
        if not sending:
            self._last_request_head = packet[:8]
            return packet
        head = self._last_request_head
        if len(packet) >= 9 and packet[7] == 0x80 and len(head) == 8 and packet[:2] == head[:2]:
            return packet[:7] + bytes([head[7] | 0x80]) + packet[8:]
        return packet

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if sending and self._on_request is not None:
            failed = isinstance(pdu, ExceptionResponse)
            result = f"exception_{int(pdu.exception_code)}" if failed else "ok"
            self._on_request(pdu.function_code & 0x7F, result)
        return pdu

    async def start(self) -> None:
        self._server = ModbusTcpServer(
            self.store, address=(self.host, self.port), trace_pdu=self._trace_pdu, trace_packet=self._trace_packet
        )
        await self._server.serve_forever(background=True)
        if self.port == 0:
            self.port = self.bound_port()

    def bound_port(self) -> int:
        transport: Any = self._server.transport if self._server else None
        sockets = getattr(transport, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else self.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
