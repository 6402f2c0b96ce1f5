"""A small dict-in, dict-out Kubernetes REST layer for the reconcilers (blocking; run it in a worker thread).

Server-side apply for everything the operator owns completely; plain create for pods and for objects the workload
writes afterwards (Lease, retain ConfigMap). Every request has a timeout, so a silent connection cannot freeze the
operator. Every request is counted (the benchmark reports API requests per VirtualPLC).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client

FIELD_MANAGER = "shopfloor-operator"
REQUEST_TIMEOUT = (5.0, 30.0)  # connect, read
_TIMEOUT = urllib3.Timeout(connect=REQUEST_TIMEOUT[0], read=REQUEST_TIMEOUT[1])

# apiVersion/kind -> (path prefix, plural)
_RESOURCES = {
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts"),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps"),
    ("v1", "Secret"): ("/api/v1", "secrets"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("v1", "Pod"): ("/api/v1", "pods"),
    ("v1", "Event"): ("/api/v1", "events"),
    ("rbac.authorization.k8s.io/v1", "Role"): ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("/apis/networking.k8s.io/v1", "networkpolicies"),
    ("coordination.k8s.io/v1", "Lease"): ("/apis/coordination.k8s.io/v1", "leases"),
    ("shopfloor.io/v1alpha1", "VirtualPLC"): ("/apis/shopfloor.io/v1alpha1", "virtualplcs"),
    ("shopfloor.io/v1alpha1", "ProtocolBridge"): ("/apis/shopfloor.io/v1alpha1", "protocolbridges"),
}


_PLURALS = {plural for _, plural in _RESOURCES.values()} | {"status"}


class KubeError(Exception):
    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        try:
            message = json.loads(body).get("message", body)
        except ValueError:
            message = body
        super().__init__(f"{status}: {message}")


def _plural_of(path: str) -> str:
    parts = path.split("?", 1)[0].split("/")
    return next((part for part in reversed(parts) if part in _PLURALS), parts[-1])


def collection_path(api_version: str, kind: str, namespace: str) -> str:
    prefix, plural = _RESOURCES[(api_version, kind)]
    return f"{prefix}/namespaces/{quote(namespace)}/{plural}"


def object_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    return f"{collection_path(api_version, kind, namespace)}/{quote(name)}"


def path_of(manifest: dict[str, Any]) -> str:
    metadata = manifest["metadata"]
    return object_path(manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"])


class Kube:
    """Blocking REST calls on one ApiClient; thread-safe; counts requests."""

    def __init__(self, api_client: client.ApiClient, on_request: Callable[[str, str], None] | None = None) -> None:
        self.api = api_client
        self.on_request = on_request  # (verb, resource), e.g. for a metric
        self._lock = threading.Lock()
        self.requests = 0
        self.by_kind: Counter[str] = Counter()  # "VERB plural" -> requests, for diagnosis and benchmarks

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        decode: bool = True,
    ) -> dict[str, Any] | None:
        """The decoded response (an empty dict with `decode=False`); None when a GET finds nothing (404); KubeError
        for other failures, a 404 of any other verb included.

        The body is serialised once, straight to JSON (which is also YAML, for apply patches), and sent on the
        client's own connection pool with its credentials; the client's generic model serialisation, which walks
        every value of every manifest, is skipped."""
        resource = _plural_of(path)
        with self._lock:
            self.requests += 1
            self.by_kind[f"{method} {resource}"] += 1
        if self.on_request is not None:
            self.on_request(method, resource)
        headers = {"Accept": "application/json", "Content-Type": content_type}
        method, url, headers, _, _ = self.api.param_serialize(
            method, path, query_params=query or [], header_params=headers, auth_settings=["BearerToken"]
        )
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        response = self.api.rest_client.pool_manager.request(
            method, url, body=data, headers=headers, timeout=_TIMEOUT, preload_content=True
        )
        if response.status == 404 and method == "GET":
            return None
        if response.status >= 400:  # a 404 of a write is an error: a missing namespace, or a missing Role to bind
            raise KubeError(response.status, response.data.decode("utf-8", "replace"))
        return json.loads(response.data) if decode and response.data else {}

    def get(self, path: str) -> dict[str, Any] | None:
        return self.request("GET", path)

    def list(self, path: str, label_selector: str = "") -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        result = self.request("GET", path, query=query) or {}
        return list(result.get("items") or [])

    def apply(self, manifest: dict[str, Any]) -> None:
        """Server-side apply as the operator's field manager; creates or updates, never conflicts on versions."""
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        self.request("PATCH", path_of(manifest), manifest, query, "application/apply-patch+yaml", decode=False)

    def create(self, manifest: dict[str, Any]) -> bool:
        """Create unless it exists; True when this call created it."""
        metadata = manifest["metadata"]
        path = collection_path(manifest["apiVersion"], manifest["kind"], metadata["namespace"])
        try:
            self.request("POST", path, manifest, decode=False)
        except KubeError as error:
            if error.status == 409:
                return False
            raise
        return True

    def replace(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Update guarded by the manifest's metadata.resourceVersion: KubeError 409 when the object changed since."""
        return self.request("PUT", path_of(manifest), manifest) or {}

    def delete(self, path: str, grace_seconds: int | None = None, uid: str | None = None) -> None:
        """Delete, tolerating "already gone"; `uid` makes sure a successor with the same name is not hit."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", path, body, decode=False)
        except KubeError as error:
            if error.status not in (404, 409):
                raise

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def event(self, involved: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event on `involved` (a Kubernetes object dict); failures to record are not fatal."""
        metadata = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata.get("uid", ""),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        with contextlib.suppress(KubeError):
            self.request("POST", collection_path("v1", "Event", metadata["namespace"]), event, decode=False)
