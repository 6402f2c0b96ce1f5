"""Polls one Modbus TCP device (pymodbus async client) and writes back to it.

Polls keep an absolute schedule (a late poll does not shift the ones after it; missed periods are skipped). A
request that times out or a lost connection turns every tag of the device bad and reconnects with exponential
backoff; a Modbus exception response turns only that request's tags bad. The bridge never stops for a device.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from shopfloor_bridge.metrics import BridgeMetrics
from shopfloor_bridge.modbus_codec import ModbusTag, Table, is_bits, is_writable
from shopfloor_bridge.modbus_plan import ReadRequest, plan_reads
from shopfloor_bridge.tags import Quality, TagValue, Value, now_ms
from shopfloor_inpod.endpoints import resolve
from shopfloor_inpod.library_logs import quiet_pymodbus

log = logging.getLogger(__name__)
quiet_pymodbus()  # a source reports a lost device itself, naming it

Emit = Callable[[list[TagValue]], None]


class WriteError(Exception):
    """A write the device did not accept (or could not be sent); the message names the tag."""


@dataclass(frozen=True)
class ModbusDevice:
    name: str
    host: str
    port: int
    unit_id: int
    poll_interval: float
    tags: list[ModbusTag]
    timeout: float = 1.0
    backoff: tuple[float, float] = (0.1, 5.0)
    requests: list[ReadRequest] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "requests", plan_reads(self.tags))


class ModbusSource:
    def __init__(self, device: ModbusDevice, emit: Emit, metrics: BridgeMetrics) -> None:
        self.device = device
        self._emit = emit
        self._metrics = metrics
        self._client: AsyncModbusTcpClient | None = None
        self._by_name = {tag.name: tag for tag in device.tags}
        self._lock = asyncio.Lock()  # one request at a time on the connection: polls and writes interleave

    async def run(self) -> None:
        delay = self.device.backoff[0]
        connected = self._metrics.source_connected.labels(self.device.name)
        while True:
            # Asked again at every connect, like a resolver: on the local edge site a device may move.
            host, port = resolve(self.device.host, self.device.port)
            client = AsyncModbusTcpClient(host, port=port, timeout=self.device.timeout, retries=0, reconnect_delay=0)
            try:
                if not await client.connect():
                    raise ConnectionError(f"cannot connect to {host}:{port}")
                self._client = client
                connected.set(1)
                delay = self.device.backoff[0]
                await self._poll_forever()
            except (ModbusException, ConnectionError, OSError, TimeoutError) as exc:
                result = "timeout" if "timeout" in str(exc).lower() or isinstance(exc, TimeoutError) else "error"
                self._metrics.polls.labels(self.device.name, result).inc()
                log.warning("Modbus device %s: %s; reconnecting in %.1fs", self.device.name, exc, delay)
                self._emit([TagValue(tag.name, None, Quality.BAD) for tag in self.device.tags])
            except Exception:  # a malformed answer must not end polling: treat it as a lost connection
                self._metrics.polls.labels(self.device.name, "error").inc()
                log.exception("Modbus device %s: unexpected failure; reconnecting in %.1fs", self.device.name, delay)
                self._emit([TagValue(tag.name, None, Quality.BAD) for tag in self.device.tags])
            finally:
                self._client = None
                connected.set(0)
                client.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.device.backoff[1])

    async def _poll_forever(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.device.poll_interval
        deadline = loop.time()
        while True:
            started = time.perf_counter()
            values = await self.poll_once()
            self._metrics.poll_duration.labels(self.device.name).observe(time.perf_counter() - started)
            self._emit(values)
            deadline += interval
            now = loop.time()
            if deadline < now:
                deadline = now + interval - (now - deadline) % interval
            await asyncio.sleep(deadline - now)

    async def poll_once(self) -> list[TagValue]:
        """Reads every tag once; raises on timeout or a lost connection."""
        values: list[TagValue] = []
        all_ok = True
        for request in self.device.requests:
            observed, source_ms = time.monotonic_ns(), now_ms()
            response = await self._read(request)
            if response is None:
                all_ok = False
                values += [TagValue(t.name, None, Quality.BAD, source_ms, observed) for t in request.tags]
                continue
            if is_bits(request.table):
                for tag in request.tags:
                    bit = bool(response[tag.address - request.address])
                    values.append(TagValue(tag.name, bit, Quality.GOOD, source_ms, observed))
                continue
            registers = struct.pack(f">{len(response)}H", *response)  # once per request, not per tag
            for tag in request.tags:
                value = tag.decode_from(registers, tag.address - request.address)
                values.append(TagValue(tag.name, value, Quality.GOOD, source_ms, observed))
        self._metrics.polls.labels(self.device.name, "ok" if all_ok else "exception").inc()
        return values

    async def _read(self, request: ReadRequest) -> list[int] | list[bool] | None:
        """The request's registers or bits; None when the device answered with a Modbus exception."""
        client = self._client
        if client is None:
            raise ConnectionError("not connected")
        unit, address, count = self.device.unit_id, request.address, request.count
        async with self._lock:
            match request.table:
                case Table.COILS:
                    response = await client.read_coils(address, count=count, device_id=unit)
                case Table.DISCRETE_INPUTS:
                    response = await client.read_discrete_inputs(address, count=count, device_id=unit)
                case Table.HOLDING_REGISTERS:
                    response = await client.read_holding_registers(address, count=count, device_id=unit)
                case Table.INPUT_REGISTERS:
                    response = await client.read_input_registers(address, count=count, device_id=unit)
        if response.isError():
            log.warning(
                "Modbus device %s refused %s %d+%d: %s", self.device.name, request.table, address, count, response
            )
            return None
        if is_bits(request.table):
            return list(response.bits[:count])
        return list(response.registers)

    async def write(self, name: str, value: Value) -> None:
        """Writes one tag (coil or holding registers); raises WriteError naming the tag on any failure."""
        tag = self._by_name.get(name)
        if tag is None:
            raise WriteError(f"{name}: not a tag of Modbus device {self.device.name}")
        if not is_writable(tag.table):
            raise WriteError(f"{name}: {tag.table} are read-only")
        try:
            encoded = tag.encode(value)
        except ValueError as exc:
            raise WriteError(str(exc)) from exc
        client = self._client
        if client is None:
            raise WriteError(f"{name}: device {self.device.name} is not connected")
        try:
            async with self._lock:
                if isinstance(encoded, bool):
                    response = await client.write_coil(tag.address, encoded, device_id=self.device.unit_id)
                else:
                    response = await client.write_registers(tag.address, encoded, device_id=self.device.unit_id)
        except (ModbusException, OSError, TimeoutError) as exc:
            raise WriteError(f"{name}: {exc}") from exc
        if response.isError():
            raise WriteError(f"{name}: device {self.device.name} refused the write: {response}")

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
