"""The I/O scanner: the PLC drives remote I/O devices as a Modbus TCP client, off the scan thread.

Each device is polled at its pollInterval on the runtime's event loop; the scan copies the latest values in at its
start and hands its outputs over after it, of which only changed values are written. Inputs at contiguous addresses
of one table are read in one request (within the protocol's limits, never reading an address no variable is bound
to), so a scan's inputs come from one exchange where they can; a device that refuses such a read gets its
variables read one by one from then on. Programs read a device's
health through two optional variables they may declare (DEVICE is the device name upper-cased, `-` as `_`):

- `IO_<DEVICE>_OK : BOOL` — TRUE while the device answers its polls;
- `IO_<DEVICE>_QUALITY : INT` — 0 good, 1 uncertain (last values held after a loss), 2 bad (no value yet).

In safe state (fault, watchdog, shutdown) the scan's outputs are ignored and the safeState values are written.

In a pod, outputs are driven only while the runtime holds its Lease (shopfloor_inpod.lease): every write asks the
`OutputPermit` first, right before it leaves, so a runtime whose lock ran out never writes again, whatever is queued.
A fenced runtime writes the safe state once, while its lock still allows it, and then nothing until it holds the lock
again; then the whole output image is written afresh.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from shopfloor_bridge.modbus_codec import ModbusTag
from shopfloor_bridge.modbus_plan import ReadRequest, plan_reads
from shopfloor_inpod.library_logs import quiet_pymodbus
from shopfloor_vplc.cancelling import cancel_and_wait
from shopfloor_vplc.modbus_codec import Binding, Table

log = logging.getLogger(__name__)

quiet_pymodbus()  # a link reports a lost device itself, once, naming it

QUALITY_GOOD, QUALITY_UNCERTAIN, QUALITY_BAD = 0, 1, 2
STARTUP_GRACE_S = 5.0


class OutputPermit(Protocol):
    """Who may write the field outputs now (the runtime's lock); asked before every single write."""

    def may_drive(self) -> bool: ...

    def may_write_safe_state(self) -> bool: ...


class AlwaysPermitted:
    """Outside a pod (a laptop, a test): the only runtime there is drives its outputs."""

    def may_drive(self) -> bool:
        return True

    def may_write_safe_state(self) -> bool:
        return True


def health_variable_names(device_name: str) -> tuple[str, str]:
    stem = re.sub(r"[^A-Za-z0-9]", "_", device_name).upper()
    return f"IO_{stem}_OK", f"IO_{stem}_QUALITY"


@dataclass(frozen=True)
class DeviceConfig:
    name: str
    host: str
    port: int
    unit_id: int
    poll_interval_s: float
    inputs: Sequence[Binding]
    outputs: Sequence[Binding]
    hold_last_value: bool
    ok_variable: str | None = None  # declared spelling of IO_<DEVICE>_OK, when the program declares it
    quality_variable: str | None = None
    timeout_s: float = 1.0
    # A device is lost (onLoss applies) only after this long without a successful exchange: one late answer on a
    # busy network or host is a missed exchange (quality uncertain, reconnect), not a lost device.
    loss_after_s: float = 3.0
    source_host: str = ""  # connections leave from this address (the pod's, which identifies the writer)


class DeviceLink:
    """One remote I/O device: its poll loop, its latest inputs and its output writer."""

    def __init__(self, config: DeviceConfig, permit: OutputPermit | None = None) -> None:
        self.config = config
        self.permit: OutputPermit = permit or AlwaysPermitted()
        self.client = AsyncModbusTcpClient(
            config.host,
            port=config.port,
            timeout=config.timeout_s,
            retries=0,
            reconnect_delay=0,
            source_address=(config.source_host, 0) if config.source_host else None,
        )
        self.healthy = False
        self.ever_polled = False
        self.lost = False
        self.last_success: float | None = None
        self.safe = False
        self.on_polled: Callable[[], None] | None = None
        self.inputs: dict[str, Any] = {}
        self._read_plan = _plan_reads(config.inputs)
        self._pending_outputs: dict[str, Any] = {}
        self._outputs_ready = asyncio.Event()
        self._io_lock = asyncio.Lock()

    @property
    def quality(self) -> int:
        if self.healthy:
            return QUALITY_GOOD
        return QUALITY_UNCERTAIN if self.ever_polled else QUALITY_BAD

    def image(self) -> dict[str, Any]:
        values = dict(self.inputs)
        if self.config.ok_variable:
            values[self.config.ok_variable] = self.healthy
        if self.config.quality_variable:
            values[self.config.quality_variable] = self.quality
        return values

    async def poll_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        while True:
            await self.poll_once()
            if self.on_polled is not None:
                self.on_polled()
            next_poll += self.config.poll_interval_s
            now = loop.time()
            if next_poll < now:  # skip missed polls instead of bursting
                next_poll = now
            await asyncio.sleep(next_poll - now)

    async def poll_once(self) -> None:
        try:
            async with self._io_lock:
                await self._ensure_connected()
                values: dict[str, Any] = {}
                for request in list(self._read_plan):
                    values.update(await self._read(request))
        except (TimeoutError, ModbusException, OSError, ValueError) as exc:
            self._exchange_failed(str(exc))
            return
        self.inputs = values
        self.healthy, self.ever_polled, self.lost = True, True, False
        self.last_success = time.monotonic()

    def _exchange_failed(self, reason: str) -> None:
        """A failed request: reconnect at the next exchange; the device is lost once it has been silent for
        `loss_after_s` (at once if it never answered)."""
        self.healthy = False
        self.client.close()
        silent_for = None if self.last_success is None else time.monotonic() - self.last_success
        if silent_for is None or silent_for >= self.config.loss_after_s:
            if not self.lost:
                log.warning("field device %s lost: %s", self.config.name, reason)
            self.lost = True
        else:
            # Once per failed poll until the loss: DEBUG, so INFO stays free of per-request lines.
            log.debug(
                "field device %s missed an exchange (%s); silent for %.2f s", self.config.name, reason, silent_for
            )

    async def _ensure_connected(self) -> None:
        if not self.client.connected and not await self.client.connect():
            raise ConnectionError(f"cannot connect to {self.config.host}:{self.config.port}")

    async def _read(self, request: ReadRequest) -> dict[str, Any]:
        """The values of the variables one planned request covers."""
        response = await self._request(request.table, request.address, request.count)
        if response.isError() and len(request.tags) > 1:
            # Some devices refuse a read across variables they keep apart: read this block one variable at a time.
            log.info(
                "field device %s refused a read of %s %d..%d (%s); reading its %d variables one by one",
                self.config.name, request.table.value, request.address, request.address + request.count - 1,
                response, len(request.tags),
            )  # fmt: skip
            index = self._read_plan.index(request)
            self._read_plan[index : index + 1] = singles = _plan_reads(_bindings(request), one_by_one=True)
            return {name: value for single in singles for name, value in (await self._read(single)).items()}
        if response.isError():
            raise ModbusException(f"{request.table.value} {request.address}: {response}")
        if request.table in (Table.COILS, Table.DISCRETE_INPUTS):
            words = [int(bit) for bit in response.bits[: request.count]]
        else:
            words = list(response.registers)
        values = {}
        for binding in _bindings(request):
            offset = binding.address - request.address
            values[binding.variable] = binding.decode(words[offset : offset + binding.width])
        return values

    async def _request(self, table: Table, address: int, count: int) -> Any:
        unit = self.config.unit_id
        if table is Table.COILS:
            return await self.client.read_coils(address, count=count, device_id=unit)
        if table is Table.DISCRETE_INPUTS:
            return await self.client.read_discrete_inputs(address, count=count, device_id=unit)
        if table is Table.HOLDING_REGISTERS:
            return await self.client.read_holding_registers(address, count=count, device_id=unit)
        return await self.client.read_input_registers(address, count=count, device_id=unit)

    def queue_outputs(self, values: Mapping[str, Any]) -> None:
        """On the event loop: remember the newest value of each output and wake the writer."""
        self._pending_outputs.update(values)
        self._outputs_ready.set()

    async def write_forever(self) -> None:
        while True:
            await self._outputs_ready.wait()
            self._outputs_ready.clear()
            if not await self.flush_outputs():
                await asyncio.sleep(self.config.poll_interval_s)  # the device is not answering: no busy retry

    async def flush_outputs(self, values: Mapping[str, Any] | None = None) -> bool:
        """Write the queued outputs, or `values` (the safe state) which then bars the scan's outputs."""
        async with self._io_lock:
            if values is None:
                # Taken under the lock: scan outputs queued before a fault never follow the safe values.
                pending, self._pending_outputs = ({} if self.safe else self._pending_outputs), {}
            else:
                pending, self._pending_outputs = dict(values), {}
            if not pending:
                return True
            permitted = self.permit.may_drive if values is None else self.permit.may_write_safe_state
            try:
                if not permitted():
                    return self._refused(pending) if values is None else True
                await self._ensure_connected()
                for binding in self.config.outputs:
                    if binding.variable in pending:
                        if not permitted():  # the lock may run out between two writes
                            return self._refused(pending) if values is None else True
                        await self._write(binding, pending[binding.variable])
            except (TimeoutError, ModbusException, OSError, ValueError) as exc:
                if values is None:
                    self._pending_outputs = {**pending, **self._pending_outputs}
                    self._outputs_ready.set()  # retried with the next exchange
                self._exchange_failed(str(exc))
                return False
        return True

    def _refused(self, pending: Mapping[str, Any]) -> bool:
        """Scan outputs this runtime may not drive now (waiting for its lock, or it just ran out): kept, the newest
        value of each, and retried at the poll interval, so they leave once it may drive (fencing drops them)."""
        self._pending_outputs = {**pending, **self._pending_outputs}
        self._outputs_ready.set()
        return False

    async def _write(self, binding: Binding, value: Any) -> None:
        unit = self.config.unit_id
        if binding.table is Table.COILS:
            response = await self.client.write_coil(binding.address, bool(value), device_id=unit)
        else:
            response = await self.client.write_registers(binding.address, binding.encode(value), device_id=unit)
        if response.isError():
            raise ModbusException(f"write {binding.table.value} {binding.address}: {response}")

    def close(self) -> None:
        self.client.close()


class FieldIO:
    """All devices, as the scan engine sees them (see engine.FieldIO). Thread-safe towards the scan thread."""

    def __init__(self, devices: Sequence[DeviceConfig], permit: OutputPermit | None = None) -> None:
        self.links = [DeviceLink(device, permit) for device in devices]
        self._output_variables = [b.variable for link in self.links for b in link.config.outputs]
        self._last_sent: dict[str, Any] = {}
        self._image: dict[str, Any] = {}  # the latest value the scan handed over for each output
        self._safe = False
        self._fenced = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._safe_written: asyncio.Future[None] | None = None

    @property
    def output_variables(self) -> Sequence[str]:
        return self._output_variables

    def on_polled(self, callback: Callable[[], None]) -> None:
        """Call `callback` on the event loop after every poll of any device (a scan in another process needs it)."""
        for link in self.links:
            link.on_polled = callback

    async def start(self, grace_s: float = STARTUP_GRACE_S) -> None:
        """Start polling once every device answered (or `grace_s` passed), so the first scan sees real inputs and
        devices that come up a moment after the runtime do not fault it."""
        self._loop = asyncio.get_running_loop()
        deadline = self._loop.time() + grace_s
        while True:
            await asyncio.gather(*(link.poll_once() for link in self.links if not link.ever_polled))
            if all(link.ever_polled for link in self.links) or self._loop.time() >= deadline:
                break
            await asyncio.sleep(min(0.2, max(0.0, deadline - self._loop.time())))
        for link in self.links:
            self._tasks.append(asyncio.create_task(link.poll_forever(), name=f"poll-{link.config.name}"))
            self._tasks.append(asyncio.create_task(link.write_forever(), name=f"write-{link.config.name}"))

    async def stop(self) -> None:
        # Cancelled until they end: a poll or write cancelled as its answer arrives carries on (cancelling.py).
        await cancel_and_wait(self._tasks, "the I/O scanner")
        self._tasks.clear()
        for link in self.links:
            link.close()

    # -- called from the scan thread --------------------------------------------------------------------------------
    def latest_inputs(self) -> Mapping[str, Any]:
        merged: dict[str, Any] = {}
        for link in self.links:
            merged.update(link.image())
        return merged

    def lost_device(self) -> str | None:
        for link in self.links:
            if link.lost and not link.config.hold_last_value:
                return link.config.name
        return None

    def write_outputs(self, values: Mapping[str, Any]) -> None:
        self._image.update(values)  # first: unfence() reads it after clearing _fenced
        if self._safe or self._fenced or self._loop is None:
            return
        changed = {name: value for name, value in values.items() if self._last_sent.get(name, _UNSET) != value}
        if not changed:
            return
        self._last_sent.update(changed)
        self._loop.call_soon_threadsafe(self._dispatch, changed)

    def enter_safe_state(self, values: Mapping[str, Any]) -> None:
        """Ignore the scan's outputs from now on and write the safe values (from any thread, without blocking)."""
        self._safe = True
        if self._loop is None:
            return
        safe = dict(values)
        future = asyncio.run_coroutine_threadsafe(self._write_safe(safe), self._loop)
        future.add_done_callback(_log_failure)

    def resume(self) -> None:
        self._last_sent.clear()
        self._safe = False
        if not self._fenced:
            for link in self.links:
                link.safe = False

    # -- the lock (on the event loop) -------------------------------------------------------------------------------
    def fence(self, safe: Mapping[str, Any]) -> None:
        """The lock is lost: write the safe state once (while the lock still allows it), then drive nothing."""
        if self._fenced:
            return
        self._fenced = True
        task = asyncio.ensure_future(self._write_safe(safe))
        self._tasks.append(task)

    def unfence(self) -> None:
        """The lock is held again: every output is written afresh (unless the PLC is in its safe state)."""
        if not self._fenced:
            return
        self._fenced = False
        self._last_sent.clear()
        if not self._safe:
            for link in self.links:
                link.safe = False
            # The scan hands over only changed outputs (from its own process, too): the whole image goes from here.
            image = dict(self._image)
            self._last_sent.update(image)
            self._dispatch(image)

    # -- on the event loop ------------------------------------------------------------------------------------------
    def _dispatch(self, values: Mapping[str, Any]) -> None:
        if self._safe or self._fenced:
            return
        for link in self.links:
            mine = {b.variable: values[b.variable] for b in link.config.outputs if b.variable in values}
            if mine:
                link.queue_outputs(mine)

    async def _write_safe(self, safe: Mapping[str, Any]) -> None:
        results = []
        for link in self.links:
            link.safe = True
            results.append(
                link.flush_outputs({b.variable: safe[b.variable] for b in link.config.outputs if b.variable in safe})
            )
        written = await asyncio.gather(*results)
        if not all(written):
            log.error("safe state could not be written to every field device")

    async def write_safe_state(self, values: Mapping[str, Any]) -> None:
        """On the event loop: enter safe state and return once the safe values were written (or failed)."""
        self._safe = True
        await self._write_safe(values)


_UNSET = object()


def _plan_reads(bindings: Sequence[Binding], one_by_one: bool = False) -> list[ReadRequest]:
    """The bridge's read planner (contiguous addresses of one table share a request, within the protocol's limits);
    it reads only a tag's table, address and width, which a Binding has too."""
    if one_by_one:
        return [plan_reads(cast("list[ModbusTag]", [binding]))[0] for binding in bindings]
    return plan_reads(cast("list[ModbusTag]", list(bindings)))


def _bindings(request: ReadRequest) -> list[Binding]:
    return cast("list[Binding]", list(request.tags))


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    if future.cancelled():  # the loop closed first (a stop): the stop writes the safe state itself
        return
    if future.exception() is not None:
        log.error("safe state not written: %s", future.exception())
