"""Pure planning of how to run a pod's workload on this machine.

The pod's own container command and environment are used as they are; the site adds only what a kubelet
would provide differently here: credentials (a kubeconfig holding the pod's service-account token, instead of
the mounted token), loopback listeners in place of the pod's network namespace (each container port mapped to a
free loopback port), and the pod's mounted Secret and ConfigMap volumes materialised under a per-pod folder.
`status.podIP` is the address kwok gave the pod, in the site's loopback pod range: a workload may bind its client
sockets to it, so the peers it talks to see which pod is talking.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

PART_OF_LABEL = "app.kubernetes.io/part-of"
PART_OF_VALUE = "shopfloor"
COMPONENT_LABEL = "app.kubernetes.io/component"
WORKLOAD_COMPONENTS = ("vplc", "bridge")

# Variables through which the site tells a workload where it really listens (see shopfloor_inpod).
PORT_MAP_ENV = "SHOPFLOOR_PORT_MAP"
BIND_HOST_ENV = "SHOPFLOOR_BIND_HOST"
FS_ROOT_ENV = "SHOPFLOOR_FS_ROOT"
KUBECONFIG_ENV = "SHOPFLOOR_KUBECONFIG"

Lookup = Callable[[str, str, str], str | None]
"""(kind "Secret"|"ConfigMap", name, key) -> value, or None when missing."""


class LaunchError(ValueError):
    """The pod cannot be run here; the message says which field."""


class MountedVolume(BaseModel):
    mount_path: str
    kind: str  # Secret | ConfigMap
    name: str
    items: dict[str, str] | None = None  # key -> relative path; None = every key


class PodLaunch(BaseModel):
    namespace: str
    pod_name: str
    uid: str
    node_name: str
    pod_ip: str = ""
    component: str
    owner: str
    service_account: str
    command: list[str]
    env: dict[str, str]
    labels: dict[str, str]
    container_ports: dict[str, int]
    volumes: list[MountedVolume]
    # The container's readinessProbe (httpGet), as the runner probes it: the path and the port's name or number.
    readiness_path: str = ""
    readiness_port: str = ""


def is_site_workload(pod: Mapping[str, Any]) -> bool:
    labels = pod.get("metadata", {}).get("labels") or {}
    return bool(labels.get(PART_OF_LABEL) == PART_OF_VALUE and labels.get(COMPONENT_LABEL) in WORKLOAD_COMPONENTS)


_FIELD_PATH = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def _field_value(pod: Mapping[str, Any], path: str) -> str:
    metadata, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.podIPs": ",".join(entry.get("ip", "") for entry in status.get("podIPs") or []),
        "status.hostIP": status.get("hostIP"),
        "status.hostIPs": ",".join(entry.get("ip", "") for entry in status.get("hostIPs") or []),
    }
    if path in simple:
        return str(simple[path] or "")
    match = _FIELD_PATH.match(path)
    if match:
        return str((metadata.get(match.group(1)) or {}).get(match.group(2), ""))
    raise LaunchError(f"env fieldRef.fieldPath {path!r} is not supported by the simulated kubelet")


def _env(pod: Mapping[str, Any], container: Mapping[str, Any], lookup: Lookup) -> dict[str, str]:
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        name = var["name"]
        source = var.get("valueFrom")
        if source is None:
            env[name] = str(var.get("value", ""))
        elif "fieldRef" in source:
            env[name] = _field_value(pod, source["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            kind, ref = (
                ("Secret", source["secretKeyRef"])
                if "secretKeyRef" in source
                else ("ConfigMap", source["configMapKeyRef"])
            )
            value = lookup(kind, ref["name"], ref["key"])
            if value is None and not ref.get("optional", False):
                raise LaunchError(f"env {name}: {kind} {ref['name']} has no key {ref['key']!r}")
            if value is not None:
                env[name] = value
        elif "resourceFieldRef" in source:
            continue
        else:
            raise LaunchError(f"env {name}: valueFrom {sorted(source)} is not supported by the simulated kubelet")
    return env


def _volumes(pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[MountedVolume]:
    by_name = {v["name"]: v for v in pod.get("spec", {}).get("volumes") or []}
    mounted: list[MountedVolume] = []
    for mount in container.get("volumeMounts") or []:
        volume = by_name.get(mount["name"], {})
        if "secret" in volume:
            kind, name, items = "Secret", volume["secret"]["secretName"], volume["secret"].get("items")
        elif "configMap" in volume:
            kind, name, items = "ConfigMap", volume["configMap"]["name"], volume["configMap"].get("items")
        else:
            continue  # emptyDir and projected service-account tokens: the site provides its own
        mapping = {item["key"]: item["path"] for item in items} if items else None
        mounted.append(MountedVolume(mount_path=mount["mountPath"], kind=kind, name=name, items=mapping))
    return mounted


def image_entrypoint(image: str) -> list[str]:
    """The entry point of a Shopfloor image: the command named like the image (see Dockerfile), e.g.
    `ghcr.io/shopfloor/shopfloor-vplc:0.1.0` -> `shopfloor-vplc`. Other images have none known here."""
    name = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    return [name] if name in ("shopfloor-vplc", "shopfloor-bridge", "shopfloor-operator") else []


def plan_launch(pod: Mapping[str, Any], lookup: Lookup) -> PodLaunch:
    """How to run `pod` (a workload pod bound to a node) here. Raises LaunchError naming the field."""
    metadata, spec = pod.get("metadata", {}), pod.get("spec", {})
    containers = spec.get("containers") or []
    if not containers:
        raise LaunchError("spec.containers is empty")
    container = containers[0]
    entrypoint = container.get("command") or image_entrypoint(container.get("image", ""))
    command = [*entrypoint, *(container.get("args") or [])]
    if not command:
        name = container.get("name")
        raise LaunchError(f"spec.containers[0] ({name}) has no command and its image no known entry point")
    labels = metadata.get("labels") or {}
    owners = metadata.get("ownerReferences") or []
    ports = {str(p.get("name") or p["containerPort"]): int(p["containerPort"]) for p in container.get("ports") or []}
    return PodLaunch(
        namespace=metadata["namespace"],
        pod_name=metadata["name"],
        uid=metadata["uid"],
        node_name=spec.get("nodeName") or "",
        pod_ip=(pod.get("status") or {}).get("podIP") or "",
        component=labels.get(COMPONENT_LABEL, ""),
        owner=owners[0]["name"] if owners else labels.get("app.kubernetes.io/instance", metadata["name"]),
        service_account=spec.get("serviceAccountName") or "default",
        command=command,
        labels=dict(labels),
        env=_env(pod, container, lookup),
        container_ports=ports,
        volumes=_volumes(pod, container),
        readiness_path=str(((container.get("readinessProbe") or {}).get("httpGet") or {}).get("path") or ""),
        readiness_port=str(((container.get("readinessProbe") or {}).get("httpGet") or {}).get("port") or ""),
    )


def port_map_value(mapping: Mapping[int, int]) -> str:
    """`SHOPFLOOR_PORT_MAP` text: `container=host` pairs, comma separated."""
    return ",".join(f"{container}={host}" for container, host in sorted(mapping.items()))
