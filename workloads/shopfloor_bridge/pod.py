"""The bridge in a pod (`shopfloor-bridge run --in-pod`): manifest from the ConfigMap, state through the Lease.

The operator writes the ProtocolBridge manifest (plcRefs resolved to Services) to the ConfigMap `<bridge>-runtime`,
key `protocolbridge.yaml`; a changed configuration means a new pod, so it is read once at start. The Lease `<bridge>`
carries `shopfloor.io/state` (Loading, Running, Faulted, Stopped), `shopfloor.io/fault` and
`shopfloor.io/active-revision` (sha256 of the manifest text). Settings come from SHOPFLOOR_* variables
(shopfloor_inpod.settings); the buffer lives in SHOPFLOOR_BRIDGE_STATE_DIR (default /tmp/shopfloor-bridge), under
SHOPFLOOR_FS_ROOT when that is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from shopfloor_api import ManifestError, ProtocolBridge, load_manifest
from shopfloor_api.runtime_contract import (
    ANNOTATION_ACTIVE_REVISION,
    ANNOTATION_FAULT,
    ANNOTATION_STATE,
    BRIDGE_MANIFEST_KEY,
)
from shopfloor_bridge.bridge import Bridge
from shopfloor_bridge.config import ConfigError, SecretFiles, from_manifest
from shopfloor_bridge.http import HealthServer
from shopfloor_bridge.metrics import BridgeMetrics
from shopfloor_bridge.state import BridgeState, Health
from shopfloor_inpod.configmap import ConfigMapStore
from shopfloor_inpod.lease import LeaseLock
from shopfloor_inpod.settings import PodSettings

log = logging.getLogger(__name__)

MANIFEST_KEY = BRIDGE_MANIFEST_KEY
RETRY_S = 5.0


class LeaseListener:
    """Adapts bridge state changes to Lease annotations (the seam between the bridge and shopfloor_inpod)."""

    def __init__(self, reporter: LeaseLock, revision: str = "") -> None:
        self.reporter = reporter
        self.revision = revision

    def __call__(self, state: BridgeState, fault: str | None) -> None:
        self.reporter.update(
            {ANNOTATION_STATE: state.value, ANNOTATION_FAULT: fault or "", ANNOTATION_ACTIVE_REVISION: self.revision}
        )


async def _read_manifest(store: ConfigMapStore, listener: LeaseListener, stop: asyncio.Event) -> str | None:
    """The manifest text, retried until the ConfigMap has it (or we are told to stop)."""
    while not stop.is_set():
        try:
            text = await asyncio.to_thread(store.read)
        except (ApiException, HTTPError, OSError) as exc:
            text, problem = None, f"reading ConfigMap {store.name}: {getattr(exc, 'reason', exc)}"
        else:
            problem = f"ConfigMap {store.name} has no key {MANIFEST_KEY}"
        if text is not None:
            return text
        listener(BridgeState.LOADING, problem)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RETRY_S)
    return None


def _build(text: str, settings: PodSettings, listener: LeaseListener) -> Bridge:
    """The bridge of the manifest, bound to the pod's addresses; raises ManifestError/ConfigError/ValueError."""
    manifest = load_manifest(text)
    if not isinstance(manifest, ProtocolBridge):
        raise ConfigError(f"{MANIFEST_KEY}: kind: expected ProtocolBridge, got {manifest.kind}")
    # Like mounted paths, the state directory lives under SHOPFLOOR_FS_ROOT (a per-pod folder on the local site).
    state_dir = Path(os.environ.get("SHOPFLOOR_BRIDGE_STATE_DIR", "").strip() or "/tmp/shopfloor-bridge")
    fs_root = Path(os.environ.get("SHOPFLOOR_FS_ROOT", "").strip() or "/")
    state_dir = fs_root / state_dir.relative_to("/") if state_dir.is_absolute() else state_dir
    config = from_manifest(manifest, state_dir, SecretFiles(settings.secrets_dir))
    if config.opcua_server is not None:
        server = config.opcua_server
        config = dataclasses.replace(
            config, opcua_server=dataclasses.replace(server, host=settings.bind_host, port=settings.port(server.port))
        )
    return Bridge(config, listeners=[listener])


async def run_pod(stop: asyncio.Event) -> int:
    settings = PodSettings.from_env()
    api: client.ApiClient = settings.api_client()
    reporter = LeaseLock(api, settings.namespace, settings.lease, settings.pod_name, settings.lock_timing)
    listener = LeaseListener(reporter)
    listener(BridgeState.LOADING, None)
    reporting = asyncio.create_task(reporter.run())
    health = Health([listener])
    bridge: Bridge | None = None
    http: HealthServer | None = None
    try:
        store = ConfigMapStore(api, settings.namespace, settings.config_map, MANIFEST_KEY)
        text = await _read_manifest(store, listener, stop)
        if text is None:
            return 0
        listener.revision = hashlib.sha256(text.encode()).hexdigest()
        try:
            bridge = _build(text, settings, listener)
            health = bridge.health
        except (ManifestError, ConfigError, ValueError) as exc:
            log.error("cannot run the bridge: %s", exc)
            health.set_state(BridgeState.FAULTED, str(exc))
        metrics = bridge.metrics if bridge else BridgeMetrics()
        http = HealthServer(health, metrics, settings.bind_host, settings.port(settings.http_port))
        await http.start()
        if bridge is not None:
            try:
                await bridge.start()
            except OSError as exc:
                log.error("cannot start: %s", exc)
                health.set_state(BridgeState.FAULTED, str(exc))
        await stop.wait()
        return 0
    finally:
        if bridge is not None and health.state is not BridgeState.FAULTED:
            await bridge.stop()
        if http is not None:
            await http.stop()
        listener(BridgeState.STOPPED if health.state is not BridgeState.FAULTED else health.state, health.fault)
        reporting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporting
        await asyncio.to_thread(reporter.release)  # the final state, and the Lease free for the next pod
