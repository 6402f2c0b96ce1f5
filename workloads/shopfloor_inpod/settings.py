"""In-pod configuration from the environment (set by the operator's pod builder).

- SHOPFLOOR_NAME: name of the VirtualPLC / ProtocolBridge, and of its Lease (required).
- SHOPFLOOR_NAMESPACE: namespace of the workload's objects (default: the service account's namespace).
- SHOPFLOOR_POD_NAME: this pod's name, the Lease's holderIdentity (default: HOSTNAME).
- SHOPFLOOR_KUBECONFIG: a kubeconfig file; unset means in-cluster (the service account token).
- SHOPFLOOR_HTTP_PORT: the metrics/health port (default 8080).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class SettingsError(ValueError):
    """A missing or invalid environment variable, named in the message."""


@dataclass(frozen=True)
class PodSettings:
    namespace: str
    name: str
    pod_name: str
    kubeconfig: Path | None
    http_port: int = 8080

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PodSettings:
        env = os.environ if env is None else env
        name = env.get("SHOPFLOOR_NAME", "").strip()
        if not name:
            raise SettingsError("SHOPFLOOR_NAME is not set: the name of the VirtualPLC or ProtocolBridge")
        namespace = env.get("SHOPFLOOR_NAMESPACE", "").strip()
        if not namespace and SERVICE_ACCOUNT_NAMESPACE.is_file():
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        if not namespace:
            raise SettingsError("SHOPFLOOR_NAMESPACE is not set and no service account namespace is mounted")
        pod_name = env.get("SHOPFLOOR_POD_NAME", "").strip() or env.get("HOSTNAME", "").strip()
        if not pod_name:
            raise SettingsError("SHOPFLOOR_POD_NAME is not set (nor HOSTNAME)")
        kubeconfig = env.get("SHOPFLOOR_KUBECONFIG", "").strip()
        port_text = env.get("SHOPFLOOR_HTTP_PORT", "8080").strip()
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise SettingsError(f"SHOPFLOOR_HTTP_PORT: {port_text!r} is not a port number")
        return cls(namespace, name, pod_name, Path(kubeconfig) if kubeconfig else None, int(port_text))

    def api_client(self) -> client.ApiClient:
        if self.kubeconfig is not None:
            return config.new_client_from_config(str(self.kubeconfig))
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
