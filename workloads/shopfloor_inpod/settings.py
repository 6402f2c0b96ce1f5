"""In-pod configuration from the environment (set by the operator's pod builder; the local edge site adds the
last three where a kubelet would differ).

- SHOPFLOOR_NAME: name of the VirtualPLC / ProtocolBridge (required).
- SHOPFLOOR_NAMESPACE: namespace of the workload's objects (default: the service account's namespace).
- SHOPFLOOR_POD_NAME: this pod's name, the Lease's holderIdentity (default: HOSTNAME).
- SHOPFLOOR_CONFIGMAP, SHOPFLOOR_LEASE, SHOPFLOOR_RETAIN_CONFIGMAP: object names (default `<name>-runtime`,
  `<name>`, `<name>-retain`).
- SHOPFLOOR_LEASE_DURATION: the Lease's duration in seconds (default 3; see shopfloor_api.runtime_contract).
- SHOPFLOOR_WITNESS_URL: the operator's witness (docs/failover.md); unset: none, a failed renewal always fences.
- SHOPFLOOR_POD_IP: this pod's address; field-device connections leave from it (unset: the system chooses).
- SHOPFLOOR_REDUNDANCY: `HotStandby` for a primary/standby pair (shopfloor_vplc.hot_standby); unset: one runtime.
- SHOPFLOOR_TAKEOVER_AFTER, SHOPFLOOR_SYNC_INTERVAL: the hot standby's timing in seconds (StandbyTiming).
- SHOPFLOOR_SYNC_KEY_FILE: the hot standby's shared key (required with HotStandby; relative to SHOPFLOOR_FS_ROOT).
- SHOPFLOOR_HTTP_PORT: the metrics/health port (default 8080).
- SHOPFLOOR_SECRETS_DIR: where Secrets are mounted, one folder per Secret (default /etc/shopfloor/secrets).
- SHOPFLOOR_KUBECONFIG: a kubeconfig file; unset means in-cluster (the service account token).
- SHOPFLOOR_BIND_HOST: the address servers listen on (default 0.0.0.0).
- SHOPFLOOR_PORT_MAP: `container=host` pairs, comma separated: listen on `host` where the spec says `container`.
- SHOPFLOOR_FS_ROOT: a folder that mounted paths (SHOPFLOOR_SECRETS_DIR) are relative to.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client, config

from shopfloor_api.runtime_contract import (
    ENV_CONFIGMAP,
    ENV_HTTP_PORT,
    ENV_KUBECONFIG,
    ENV_LEASE,
    ENV_LEASE_DURATION,
    ENV_NAME,
    ENV_NAMESPACE,
    ENV_POD_IP,
    ENV_POD_NAME,
    ENV_REDUNDANCY,
    ENV_RETAIN_CONFIGMAP,
    ENV_SECRETS_DIR,
    ENV_SYNC_INTERVAL,
    ENV_SYNC_KEY_FILE,
    ENV_TAKEOVER_AFTER,
    ENV_WITNESS_URL,
    MIN_SYNC_KEY_BYTES,
    REDUNDANCY_HOT_STANDBY,
    LockTiming,
    StandbyTiming,
)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class SettingsError(ValueError):
    """A missing or invalid environment variable, named in the message."""


def parse_port_map(text: str) -> dict[int, int]:
    mapping: dict[int, int] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        container, sep, host = pair.partition("=")
        if not sep or not container.strip().isdigit() or not host.strip().isdigit():
            raise SettingsError(f"SHOPFLOOR_PORT_MAP: {pair!r} is not container=host")
        mapping[int(container)] = int(host)
    return mapping


def read_sync_key(text: str, fs_root: Path) -> bytes:
    """The hot standby's shared key from the file the environment names: without it the pair cannot authenticate
    its link, so a runtime without one does not start."""
    if not text:
        raise SettingsError(f"{ENV_SYNC_KEY_FILE} is not set: HotStandby needs the pair's shared key")
    path = fs_root / text.lstrip("/")
    try:
        key = path.read_bytes()
    except OSError as error:
        raise SettingsError(f"{ENV_SYNC_KEY_FILE}: {path} is not readable ({error.strerror or error})") from None
    if len(key) < MIN_SYNC_KEY_BYTES:
        raise SettingsError(
            f"{ENV_SYNC_KEY_FILE}: {path} holds {len(key)} bytes, fewer than the {MIN_SYNC_KEY_BYTES} of a key"
        )
    return key


@dataclass(frozen=True)
class PodSettings:
    namespace: str
    name: str
    pod_name: str
    kubeconfig: Path | None
    http_port: int = 8080
    config_map: str = ""
    lease: str = ""
    retain_config_map: str = ""
    secrets_dir: Path = Path("/etc/shopfloor/secrets")
    bind_host: str = "0.0.0.0"
    port_map: dict[int, int] = field(default_factory=dict)
    lock_timing: LockTiming = field(default_factory=LockTiming)
    witness_url: str = ""
    pod_ip: str = ""
    standby_timing: StandbyTiming | None = None  # set: this runtime is one of a hot-standby pair
    sync_key: bytes = field(default=b"", repr=False)  # the pair's shared key (hot standby only); never logged

    @property
    def hot_standby(self) -> bool:
        return self.standby_timing is not None

    def port(self, container_port: int) -> int:
        """Where to listen for what the spec calls `container_port`."""
        return self.port_map.get(container_port, container_port)

    def secret_dir(self, secret: str) -> Path:
        return self.secrets_dir / secret

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PodSettings:
        env = os.environ if env is None else env
        name = env.get(ENV_NAME, "").strip()
        if not name:
            raise SettingsError("SHOPFLOOR_NAME is not set: the name of the VirtualPLC or ProtocolBridge")
        namespace = env.get(ENV_NAMESPACE, "").strip()
        if not namespace and SERVICE_ACCOUNT_NAMESPACE.is_file():
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        if not namespace:
            raise SettingsError("SHOPFLOOR_NAMESPACE is not set and no service account namespace is mounted")
        pod_name = env.get(ENV_POD_NAME, "").strip() or env.get("HOSTNAME", "").strip()
        if not pod_name:
            raise SettingsError("SHOPFLOOR_POD_NAME is not set (nor HOSTNAME)")
        kubeconfig = env.get(ENV_KUBECONFIG, "").strip()
        port_text = env.get(ENV_HTTP_PORT, "8080").strip()
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise SettingsError(f"SHOPFLOOR_HTTP_PORT: {port_text!r} is not a port number")
        fs_root = Path(env.get("SHOPFLOOR_FS_ROOT", "").strip() or "/")
        secrets = env.get(ENV_SECRETS_DIR, "").strip() or "/etc/shopfloor/secrets"
        try:
            timing = LockTiming.from_env_value(env.get(ENV_LEASE_DURATION))
        except ValueError as error:
            raise SettingsError(str(error)) from None
        redundancy = env.get(ENV_REDUNDANCY, "").strip()
        if redundancy not in ("", "None", REDUNDANCY_HOT_STANDBY):
            raise SettingsError(f"{ENV_REDUNDANCY}: {redundancy!r} is not None or {REDUNDANCY_HOT_STANDBY}")
        try:
            standby = (
                StandbyTiming.from_env_values(env.get(ENV_TAKEOVER_AFTER), env.get(ENV_SYNC_INTERVAL))
                if redundancy == REDUNDANCY_HOT_STANDBY
                else None
            )
        except ValueError as error:
            raise SettingsError(f"{ENV_TAKEOVER_AFTER}/{ENV_SYNC_INTERVAL}: {error}") from None
        sync_key = read_sync_key(env.get(ENV_SYNC_KEY_FILE, "").strip(), fs_root) if standby is not None else b""
        return cls(
            namespace,
            name,
            pod_name,
            Path(kubeconfig) if kubeconfig else None,
            int(port_text),
            config_map=env.get(ENV_CONFIGMAP, "").strip() or f"{name}-runtime",
            lease=env.get(ENV_LEASE, "").strip() or name,
            retain_config_map=env.get(ENV_RETAIN_CONFIGMAP, "").strip() or f"{name}-retain",
            secrets_dir=fs_root / secrets.lstrip("/"),
            bind_host=env.get("SHOPFLOOR_BIND_HOST", "").strip() or "0.0.0.0",
            port_map=parse_port_map(env.get("SHOPFLOOR_PORT_MAP", "")),
            lock_timing=timing,
            witness_url=env.get(ENV_WITNESS_URL, "").strip(),
            pod_ip=env.get(ENV_POD_IP, "").strip(),
            standby_timing=standby,
            sync_key=sync_key,
        )

    def api_client(self) -> client.ApiClient:
        if self.kubeconfig is not None:
            return config.new_client_from_config(str(self.kubeconfig))
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
