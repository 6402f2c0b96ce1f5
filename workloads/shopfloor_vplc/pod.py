"""The runtime in a pod: the program and settings come from the runtime ConfigMap (`<plc>-runtime`, watched: a new
revision is an online change), state goes to the Lease `<plc>`, retained values to the ConfigMap `<plc>-retain`.

The Lease is the lock: the runtime drives its field outputs and accepts client writes only while it holds it
(shopfloor_inpod.lease); it fences itself when it cannot renew in time and resumes when it holds the Lease again.

With `SHOPFLOOR_REDUNDANCY=HotStandby` two such runtimes run on two nodes: the Lease holder is the primary and
sends its state to the other, which follows it and takes over when the primary falls silent
(shopfloor_vplc.hot_standby). Both start as followers; the one that holds the Lease leads.

The runtime ConfigMap holds one key, `virtualplc.yaml`: the VirtualPLC manifest with `spec.program.source` filled in
(the operator resolves `configMapRef`). Configuration comes from the environment: see shopfloor_inpod.settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from kubernetes import client

from shopfloor_api.runtime_contract import (
    ANNOTATION_ACTIVE_REVISION,
    ANNOTATION_FAULT,
    ANNOTATION_REALTIME,
    ANNOTATION_REFUSED_REASON,
    ANNOTATION_REFUSED_REVISION,
    ANNOTATION_STATE,
    ANNOTATION_SYNC_ENDPOINT,
    PLC_MANIFEST_KEY,
    RETAIN_KEY,
    SYNC_PORT,
)
from shopfloor_api.virtualplc import VirtualPLCSpec
from shopfloor_inpod.configmap import ConfigMapStore, ConfigMapWatcher
from shopfloor_inpod.endpoints import resolve
from shopfloor_inpod.lease import LeaseLock, LockState
from shopfloor_inpod.settings import PodSettings
from shopfloor_inpod.witness import witness_client
from shopfloor_st import CompileError
from shopfloor_vplc.bindings import BindingError
from shopfloor_vplc.hot_standby import StandbyFollower, StandbyGate, StateSyncServer, advertised_endpoint
from shopfloor_vplc.image import PlcState
from shopfloor_vplc.online_change import ChangeOutcome
from shopfloor_vplc.plc_file import PlcFile, PlcFileError, from_manifest_text, settings_changed
from shopfloor_vplc.program import compile_program
from shopfloor_vplc.retain import decode_checkpoint, encode_checkpoint
from shopfloor_vplc.runtime import PlcRuntime, RuntimeOptions

log = logging.getLogger(__name__)

RUNTIME_KEY = PLC_MANIFEST_KEY


class ConfigMapRetainStore:
    """Retained values in the ConfigMap `<plc>-retain`, key `retain.json`."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.store = ConfigMapStore(api, namespace, name, RETAIN_KEY)

    def load(self) -> dict[str, Any]:
        text = self.store.read()
        return decode_checkpoint(text) if text else {}

    def save(self, revision: str, values: dict[str, Any]) -> None:
        self.store.write(encode_checkpoint(revision, values))


def state_annotations(state: PlcState, revision: str, fault: str) -> dict[str, str]:
    return {ANNOTATION_STATE: state.value, ANNOTATION_ACTIVE_REVISION: revision, ANNOTATION_FAULT: fault}


class PodRuntime:
    def __init__(self, settings: PodSettings, api: client.ApiClient) -> None:
        self.settings = settings
        self.api = api
        timing = settings.lock_timing
        witness = witness_client(settings.witness_url, timing.witness_timeout_s) if settings.witness_url else None
        self.lock = LeaseLock(api, settings.namespace, settings.lease, settings.pod_name, timing, witness=witness)
        self.lock.listeners.append(self._on_lock)
        self.runtime: PlcRuntime | None = None
        self.started = asyncio.Event()
        self.outcomes: list[ChangeOutcome] = []
        self._plc: PlcFile | None = None
        self.gate: StandbyGate | None = None
        self.sync: StateSyncServer | None = None
        self.follower: StandbyFollower | None = None
        self._standby_tasks: list[asyncio.Task[None]] = []
        self._handed_over = False
        if settings.standby_timing is not None:
            self.gate = StandbyGate(self.lock, settings.standby_timing)
            sync_port = settings.port(SYNC_PORT)
            self.sync = StateSyncServer(
                settings.pod_name, self.lock, self.gate, settings.bind_host, sync_port, settings.sync_key
            )
            endpoint = advertised_endpoint(settings.bind_host, settings.pod_ip, sync_port)
            self.lock.update({ANNOTATION_SYNC_ENDPOINT: endpoint})

    def _report(self, state: PlcState, revision: str, fault: str) -> None:
        self.lock.update(state_annotations(state, revision, fault))

    def _on_lock(self, state: LockState, reason: str) -> None:
        if self.runtime is None or self._handed_over:
            return
        if state is LockState.HOLDING:
            self.runtime.unfence()
            self.runtime.lead()
        elif state is not LockState.WAITING:  # a runtime still waiting never drove: the permit alone holds it back
            self.runtime.fence(f"{state.value}: {reason}")

    async def on_runtime_configmap(self, data: dict[str, str]) -> None:
        text = data.get(RUNTIME_KEY)
        if text is None:
            self._report(PlcState.FAULTED, "", f"ConfigMap {self.settings.config_map} has no key {RUNTIME_KEY}")
            return
        filename = f"{self.settings.config_map}/{RUNTIME_KEY}"
        if self.runtime is None:
            await self._start(text, filename)
            return
        try:
            plc = from_manifest_text(text, filename)
        except PlcFileError as exc:
            log.error("online change refused: %s", exc)
            return
        if self._plc is not None and settings_changed(self._plc, plc):
            log.warning("settings outside spec.program changed: they apply when the pod is replaced")
        outcome = await self.runtime.apply_source(plc.source, plc.locate)
        log.warning("%s", outcome.message())
        if not outcome.accepted:
            revision = outcome.revision or plc.spec.program.pinned_revision or ""
            self.lock.update({ANNOTATION_REFUSED_REVISION: revision, ANNOTATION_REFUSED_REASON: outcome.reason})
        self.outcomes.append(outcome)

    async def _start(self, text: str, filename: str) -> None:
        try:
            plc = from_manifest_text(text, filename)
        except PlcFileError as exc:
            self._report(PlcState.FAULTED, "", str(exc))
            return
        try:
            program = await asyncio.to_thread(compile_program, plc.source, filename, plc.spec.program.entrypoint)
            settings = self.settings
            secret = plc.spec.io.opcua.certificate_secret_ref
            options = RuntimeOptions(
                host=settings.bind_host,
                modbus_port=settings.port(plc.spec.io.modbus.port),
                opcua_port=settings.port(plc.spec.io.opcua.port),
                http_port=settings.port(settings.http_port),
                opcua_cert_dir=settings.secret_dir(secret.name) if secret is not None else None,
                retain_store=ConfigMapRetainStore(self.api, settings.namespace, settings.retain_config_map),
                filename=filename,
                state_listeners=[self._report],
                permit=self.lock,
                source_host=settings.pod_ip,
                follower=settings.hot_standby,
                sync_interval_s=settings.standby_timing.sync_interval_s if settings.standby_timing else 0.0,
            )
            # Built on the event loop: the I/O scanner's Modbus clients bind to the running loop when created.
            runtime = PlcRuntime(plc.name, with_resolved_field_devices(plc.spec), program, options)
        except CompileError as exc:
            self._report(PlcState.FAULTED, "", "\n".join(str(plc.locate(d)) for d in exc.diagnostics))
            return
        except (BindingError, ValueError) as exc:
            self._report(PlcState.FAULTED, "", str(exc))
            return
        try:
            await runtime.start()
        except (OSError, ValueError) as exc:  # a port taken, a certificate missing: say so, wait for the next revision
            await runtime.shutdown()
            self._report(PlcState.FAULTED, program.revision, f"cannot serve: {exc}")
            return
        realtime = runtime.engine.realtime
        if realtime is not None:
            self.lock.update({ANNOTATION_REALTIME: "granted" if realtime.granted else f"refused: {realtime.detail}"})
        self.runtime, self._plc = runtime, plc
        if self.lock.state in (LockState.FENCED, LockState.SUPERSEDED):  # lost while starting
            runtime.fence(f"{self.lock.state.value}: {self.lock.state_reason}")
        self._start_hot_standby(runtime)
        self.started.set()

    def _start_hot_standby(self, runtime: PlcRuntime) -> None:
        if self.sync is None or self.settings.standby_timing is None:
            return
        runtime.metrics.on_image.append(self.sync.offer)
        if self.lock.state is LockState.HOLDING:
            runtime.lead()  # the Lease was free: this runtime is the primary from its first scan
        else:
            self.follower = StandbyFollower(
                self.settings.pod_name,
                self.lock,
                self.settings.standby_timing,
                runtime.engine.follow,
                self.settings.sync_key,
            )
            self._standby_tasks.append(asyncio.create_task(self._follow(self.follower), name="standby"))
        gate = self.gate
        if gate is not None:  # read at each scrape (on the event loop, like the gate's own changes)
            runtime.metrics.standby_in_sync.set_function(lambda: 1 if gate.in_sync else 0)

    async def _switch_over(self) -> bool:
        """On a clean stop, a primary with a standby in sync hands it the Lease with the newest state: drive
        nothing more, wait until the standby acknowledged an image taken after that, then give it the Lease by name
        (guarded by version) and tell it. Anything short of that falls back to a plain stop (safe state, release)."""
        gate, sync, timing = self.gate, self.sync, self.settings.standby_timing
        if gate is None or sync is None or timing is None or self.runtime is None:
            return False
        standby = gate.desired
        if not standby or not gate.in_sync or not self.lock.holds_in_time():
            return False
        gate.holding_back = True
        generation = sync.generation
        if await sync.acknowledged_after(generation, timing.takeover_after_s) and await asyncio.to_thread(
            self.lock.hand_to, standby
        ):
            await sync.tell_standby_lease_is_yours()
            log.warning("SWITCHOVER: the Lease and the newest process state went to standby %s", standby)
            return True
        gate.holding_back = False
        log.warning("switchover to standby %s did not complete: stopping without it", standby)
        return False

    async def _follow(self, follower: StandbyFollower) -> None:
        await follower.run()
        if self.runtime is not None:
            self.runtime.metrics.takeovers.inc(follower.takeovers)

    async def run(self, stop: asyncio.Event) -> None:
        self.lock.update(state_annotations(PlcState.LOADING, "", ""))
        if self.sync is not None:
            await self.sync.start()
        lock_task = asyncio.create_task(self.lock.run(), name="lease")
        watcher = ConfigMapWatcher(
            self.api, self.settings.namespace, self.settings.config_map, self.on_runtime_configmap
        )
        watcher.start()
        await stop.wait()
        watcher.stop()
        self._handed_over = await self._switch_over()
        for task in self._standby_tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.sync is not None:
            await self.sync.stop()
        if self.runtime is not None:
            await self.runtime.shutdown()
        lock_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lock_task
        # The final state (Stopped), and the Lease given up so the next pod takes it without waiting for it to expire.
        await asyncio.to_thread(self.lock.release)


async def run_pod() -> int:
    settings = PodSettings.from_env()
    api = settings.api_client()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await PodRuntime(settings, api).run(stop)
    return 0


def with_resolved_field_devices(spec: VirtualPLCSpec) -> VirtualPLCSpec:
    """The spec with each field device's address as the site resolves it (unchanged in a real pod, where cluster
    DNS answers; on the local edge site, the endpoint map)."""
    devices = []
    for device in spec.io.field_devices:
        host, port = resolve(device.modbus.host, device.modbus.port)
        devices.append(
            device.model_copy(update={"modbus": device.modbus.model_copy(update={"host": host, "port": port})})
        )
    return spec.model_copy(update={"io": spec.io.model_copy(update={"field_devices": devices})})
