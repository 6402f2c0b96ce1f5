"""The vPLC runtime assembled: scan engine, I/O scanner, Modbus and OPC UA servers, metrics/health port, retain.

Start order: retained values are restored, field devices polled once, the scan starts, then the servers open.
Stop order (SIGTERM, end of run): the safe state is written to the field outputs and the variables before
anything else, then the scan ends, the servers close and the retained values are saved a last time.

In a pod the runtime drives its outputs only while it holds its Lease (the `permit`): a fenced runtime writes the
safe state to its field outputs once, then neither writes them nor accepts writes from Modbus or OPC UA clients; the
scan keeps running, so it can take over again without a jump when it holds the Lease again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopfloor_api.virtualplc import VirtualPLCSpec
from shopfloor_inpod.http import HealthServer
from shopfloor_st import Diagnostic
from shopfloor_vplc import bindings
from shopfloor_vplc.engine import EngineConfig, ScanEngine
from shopfloor_vplc.field_io import FieldIO, OutputPermit
from shopfloor_vplc.image import PlcState, WriteRefused, WriteSink
from shopfloor_vplc.metrics import RuntimeMetrics
from shopfloor_vplc.modbus_server import ModbusServer
from shopfloor_vplc.online_change import ChangeOutcome, online_change
from shopfloor_vplc.opcua_server import OpcUaConfig, OpcUaServer
from shopfloor_vplc.program import ProgramLike, retained_variables
from shopfloor_vplc.remote_engine import RemoteEngine
from shopfloor_vplc.retain import DEFAULT_INTERVAL_S, Checkpointer, RetainStore

log = logging.getLogger(__name__)

Locate = Callable[[Diagnostic], Diagnostic]
SHUTDOWN_STEP_TIMEOUT_S = 5.0


@dataclass
class RuntimeOptions:
    """How this process serves the spec: addresses and ports (overrides for tests and laptops), files, stores."""

    host: str = "0.0.0.0"
    modbus_port: int | None = None  # None: spec.io.modbus.port
    opcua_port: int | None = None  # None: spec.io.opcua.port
    http_port: int | None = 8080  # None: no health/metrics port
    opcua_cert_dir: Path | None = None  # holds tls.crt and tls.key (the mounted certificateSecretRef)
    retain_store: RetainStore | None = None
    retain_interval_s: float = DEFAULT_INTERVAL_S
    # The scan in a process of its own (shopfloor_vplc.remote_engine): busy servers cannot delay its wake-up.
    isolated_scan: bool = True
    filename: str = "<program>"
    state_listeners: list[Callable[[PlcState, str, str], None]] = field(default_factory=list)
    permit: OutputPermit | None = None  # the Lease in a pod; None: this runtime always drives its outputs
    # Hot standby (shopfloor_vplc.hot_standby): start following a primary's state; capture it this often when leading.
    follower: bool = False
    sync_interval_s: float = 0.0
    source_host: str = ""  # field-device connections leave from this address (the pod's)


@dataclass
class PermittedWrites:
    """Client writes reach the scan only while the runtime may drive the process."""

    sink: WriteSink
    permit: OutputPermit
    refused: int = 0

    def put(self, path: str, value: Any) -> int:
        if not self.permit.may_drive():
            self.refused += 1
            raise WriteRefused(f"{path}: this runtime does not hold its lock (fenced or standby)")
        return self.sink.put(path, value)


class PlcRuntime:
    def __init__(self, name: str, spec: VirtualPLCSpec, program: ProgramLike, options: RuntimeOptions) -> None:
        self.name = name
        self.spec = spec
        self.options = options
        self.metrics = RuntimeMetrics()
        self.metrics.on_state.extend(options.state_listeners)
        self.modbus_bindings = bindings.modbus_bindings(spec, program)
        self.devices = [
            dataclasses.replace(device, source_host=options.source_host)
            for device in bindings.device_configs(spec, program)
        ]
        self.field_io = FieldIO(self.devices, options.permit) if self.devices else None
        self.fenced = False
        restore = options.retain_store.load() if options.retain_store else {}
        engine_class = RemoteEngine if options.isolated_scan else ScanEngine
        self.engine: ScanEngine | RemoteEngine = engine_class(
            program,
            EngineConfig(
                cycle_ns=int(spec.cycle_time.seconds * 1e9),
                watchdog_ns=int(spec.watchdog.seconds * 1e9),
                published=bindings.published_variables(spec, program),
                safe_state=bindings.safe_state_variables(spec, program),
                retain=bool(retained_variables(program)),
                retain_capture_ns=int(min(options.retain_interval_s, 2.0) * 1e9),
                realtime_priority=spec.realtime_priority,
                sync_interval_ns=int(options.sync_interval_s * 1e9),
                follower=options.follower,
            ),
            field_io=self.field_io,
            listener=self.metrics,
            restore=restore,
        )
        self.metrics.standby.set(1 if options.follower else 0)
        if spec.io.opcua.enabled:
            self._opcua_config(program).check()  # before anything starts: a missing certificate is a setup error
        self.modbus: ModbusServer | None = None
        self.opcua: OpcUaServer | None = None
        self.http: HealthServer | None = None
        self.checkpointer: Checkpointer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    @property
    def all_bindings(self) -> list[bindings.Binding]:
        found = list(self.modbus_bindings)
        for device in self.devices:
            found += list(device.inputs) + list(device.outputs)
        return found

    def ready(self) -> tuple[bool, str]:
        if self.engine.following:  # a Service routes to the primary only
            return False, "standby: following the primary's state"
        state = self.engine.state
        if state is PlcState.RUNNING:
            return True, f"running {self.engine.program.revision}"
        return False, f"{state.value}: {self.engine.fault}" if self.engine.fault else state.value

    async def start(self) -> None:
        if self.field_io is not None:
            await self.field_io.start()
            self._tasks.append(asyncio.create_task(self._watch_devices(), name="field-device-metrics"))
        if self.field_io is not None and isinstance(self.engine, RemoteEngine):
            self.field_io.on_polled(self.engine.forward_field_inputs)
        if isinstance(self.engine, RemoteEngine):
            await asyncio.to_thread(self.engine.start)  # spawning the scan process takes a moment
        else:
            self.engine.start()
        realtime = self.engine.realtime
        if realtime is not None:
            self.metrics.realtime_granted.set(1 if realtime.granted else 0)
            for cpu in realtime.cpus:
                self.metrics.scan_cpu.labels(str(cpu)).set(1)
            log.info("real-time: %s", realtime.detail)
        io = self.spec.io
        if io.modbus.enabled:
            port = io.modbus.port if self.options.modbus_port is None else self.options.modbus_port
            self.modbus = ModbusServer(
                self.modbus_bindings,
                lambda: self.engine.snapshot,
                self.client_writes,
                host=self.options.host,
                port=port,
                unit_id=io.modbus.unit_id,
                on_request=self.metrics.modbus_request,
                plc_name=self.name,
                on_bad_request=self.metrics.modbus_bad_request,
            )
            await self.modbus.start()
        if io.opcua.enabled:
            self.opcua = OpcUaServer(
                self._opcua_config(),
                lambda: self.engine.snapshot,
                self.client_writes,
                on_sessions=self.metrics.opcua_sessions.set,
                writes_allowed=self.options.permit.may_drive if self.options.permit is not None else None,
            )
            await self.opcua.start()
        if self.options.http_port is not None:
            self.http = HealthServer(self.metrics.registry, self.ready, self.options.host, self.options.http_port)
            await self.http.start()
        if self.options.retain_store is not None and self.engine.config.retain:
            self.checkpointer = Checkpointer(
                self.options.retain_store,
                lambda: (self.engine.program.revision, self.engine.retained_values),
                self.options.retain_interval_s,
            )
            self._tasks.append(asyncio.create_task(self.checkpointer.run(), name="retain-checkpoint"))
        log.info("running program %s (revision %s)", self.engine.program.entrypoint, self.engine.program.revision)

    @property
    def client_writes(self) -> WriteSink:
        """Where Modbus and OPC UA client writes go: the scan, while this runtime holds its lock."""
        if self.options.permit is None:
            return self.engine.writes
        return PermittedWrites(self.engine.writes, self.options.permit)

    def fence(self, reason: str) -> None:
        """The lock is lost (on the event loop): safe state once to the field outputs, then drive nothing."""
        if self.fenced:
            return
        self.fenced = True
        self.metrics.fenced.set(1)
        self.metrics.fencings.inc()
        log.warning(
            "FENCED: field outputs in their safe state and no longer driven; client writes refused (%s)", reason
        )
        if self.field_io is not None:
            self.field_io.fence(self.engine.config.safe_state or {})

    def unfence(self) -> None:
        """The lock is held (again): outputs follow the program."""
        if not self.fenced:
            return
        self.fenced = False
        self.metrics.fenced.set(0)
        log.warning("lock held again: field outputs follow the program")
        if self.field_io is not None:
            self.field_io.unfence()

    def lead(self) -> None:
        """A hot standby holds the Lease now: the program runs on from the state it followed."""
        if self.engine.following:
            log.warning("standby -> primary: the program runs on from the followed state")
            self.engine.lead()
            self.metrics.standby.set(0)

    def _opcua_config(self, program: ProgramLike | None = None) -> OpcUaConfig:
        opcua = self.spec.io.opcua
        cert_dir = self.options.opcua_cert_dir
        return OpcUaConfig(
            host=self.options.host,
            port=opcua.port if self.options.opcua_port is None else self.options.opcua_port,
            program=(program or self.engine.program).entrypoint,
            variables=bindings.opcua_variables(program or self.engine.program),
            writable=opcua.writable,
            security_policies=[policy.value for policy in opcua.security_policies],
            certificate=cert_dir / "tls.crt" if cert_dir else None,
            private_key=cert_dir / "tls.key" if cert_dir else None,
            allow_anonymous=opcua.allow_anonymous,
            trusted_user_certificates=sorted((cert_dir / "users").glob("*.der")) if cert_dir else (),
            trusted_clients_dir=cert_dir / "trusted" if cert_dir and (cert_dir / "trusted").is_dir() else None,
        )

    async def _watch_devices(self) -> None:
        assert self.field_io is not None
        while True:
            for link in self.field_io.links:
                self.metrics.field_device_up.labels(link.config.name).set(1 if link.healthy else 0)
            await asyncio.sleep(1.0)

    async def apply_source(
        self, source: str, locate: Callable[[Diagnostic], Diagnostic] | None = None
    ) -> ChangeOutcome:
        """Online change to `source`; refused changes leave the running program as it is."""
        served = self.opcua.config.variables if self.opcua is not None else ()
        filename = self.options.filename
        outcome = await online_change(self.engine, self.spec, self.all_bindings, source, filename, locate, served)
        if not outcome.unchanged:
            self.metrics.online_changes.labels("accepted" if outcome.accepted else "refused").inc()
        return outcome

    async def shutdown(self) -> None:
        """Safe state first (field outputs, then variables), then everything else closes."""
        if self._stopped:
            return
        self._stopped = True
        if self.field_io is not None:
            await self.field_io.write_safe_state(self.engine.config.safe_state or {})
        await asyncio.to_thread(self.engine.stop)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.checkpointer is not None:
            await self._bounded("retain checkpoint", self.checkpointer.save_if_changed())
        if self.modbus is not None:
            await self._bounded("Modbus server", self.modbus.stop())
        if self.opcua is not None:
            await self._bounded("OPC UA server", self.opcua.stop())
        if self.http is not None:
            await self._bounded("HTTP server", self.http.stop())
        if self.field_io is not None:
            await self._bounded("I/O scanner", self.field_io.stop())

    @staticmethod
    async def _bounded(what: str, closing: Coroutine[Any, Any, None]) -> None:
        """A part that does not close in time must not keep the process from stopping (the safe state is out)."""
        try:
            await asyncio.wait_for(closing, SHUTDOWN_STEP_TIMEOUT_S)
        except TimeoutError:
            log.error("%s did not stop within %.0f s", what, SHUTDOWN_STEP_TIMEOUT_S)
