"""Looking at the site the way an engineer would: the API objects, and the PLCs over their own protocols.

Shared by `make demo` (which prints what it sees) and the end-to-end tests (which assert it).
"""

from __future__ import annotations

import struct
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families
from pymodbus.client import ModbusTcpClient

from shopfloor_localsite.site.edgesite import EdgeSite

GROUP, VERSION = "shopfloor.io", "v1alpha1"
PLURALS = {"VirtualPLC": "virtualplcs", "ProtocolBridge": "protocolbridges"}


@dataclass(frozen=True)
class Endpoints:
    node: str
    pod: str
    modbus: int | None
    opcua: int | None
    http: int | None


class SiteProbe:
    def __init__(self, site: EdgeSite) -> None:
        self.site = site
        self.objects = client.CustomObjectsApi(site.api)
        self.core = client.CoreV1Api(site.api)
        self.coordination = client.CoordinationV1Api(site.api)

    # -- API objects -------------------------------------------------------------------------------------------

    def get(self, namespace: str, name: str, kind: str = "VirtualPLC") -> dict[str, Any]:
        return dict(self.objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name))

    def status(self, namespace: str, name: str, kind: str = "VirtualPLC") -> dict[str, Any]:
        return dict(self.get(namespace, name, kind).get("status") or {})

    def condition(self, namespace: str, name: str, type_: str, kind: str = "VirtualPLC") -> dict[str, Any]:
        conditions = self.status(namespace, name, kind).get("conditions") or []
        return next((c for c in conditions if c.get("type") == type_), {"type": type_, "status": "Unknown"})

    def patch_spec(self, namespace: str, name: str, spec: dict[str, Any], kind: str = "VirtualPLC") -> None:
        self.objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name, {"spec": spec})

    def lease(self, namespace: str, name: str) -> dict[str, str]:
        """The runtime's report: holder and its shopfloor.io/* annotations."""
        try:
            lease = self.coordination.read_namespaced_lease(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return {}
            raise
        report = dict(lease.metadata.annotations or {})
        report["holder"] = lease.spec.holder_identity or ""
        return report

    def events(self, namespace: str, name: str, kind: str = "VirtualPLC") -> list[str]:
        selector = f"involvedObject.name={name},involvedObject.kind={kind}"
        items = self.core.list_namespaced_event(namespace, field_selector=selector).items
        # Events of one second share a timestamp; the resource version orders them as they were written.
        ordered = sorted(items, key=lambda e: (e.metadata.creation_timestamp, int(e.metadata.resource_version)))
        return [f"{e.reason}: {e.message}" for e in ordered]

    def node_labels(self, node: str) -> dict[str, str]:
        return dict(self.core.read_node(node).metadata.labels or {})

    # -- the running workloads ---------------------------------------------------------------------------------

    def endpoints(self, namespace: str, owner: str, pod: str | None = None) -> Endpoints | None:
        """Where the owner's runtime answers: the one of `pod` when given, else of the pod its status names (while a
        cut-off node still runs the old one), else any running one."""
        assert self.site.runner is not None
        running = [
            w
            for w in self.site.runner.workloads()
            if w["namespace"] == namespace and w["owner"] == owner and w["running"]
        ]
        if pod is None and len(running) > 1:
            kind = "ProtocolBridge" if running[0]["component"] == "bridge" else "VirtualPLC"
            pod = self.status(namespace, owner, kind).get("podName")
        for workload in running:
            if pod is None or workload["pod"] == pod:
                ports = workload["ports"]
                return Endpoints(
                    node=workload["node"],
                    pod=workload["pod"],
                    modbus=ports.get("modbus"),
                    opcua=ports.get("opcua"),
                    http=ports.get("http"),
                )
        return None

    def metric(self, namespace: str, pod: str, name: str) -> float | None:
        """One sample of a workload's own /metrics (the first series of `name`), or None when unreachable."""
        assert self.site.runner is not None
        workload = next(
            (w for w in self.site.runner.workloads() if (w["namespace"], w["pod"]) == (namespace, pod)), None
        )
        if workload is None or "http" not in workload["ports"]:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{workload['ports']['http']}/metrics", timeout=2) as page:
                text = page.read().decode()
        except OSError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        return None

    def read_modbus(self, namespace: str, owner: str, table: str, address: int, kind: str = "UINT") -> Any:
        """One value from a PLC's Modbus server (32-bit types and REAL high word first), or None if unreachable."""
        endpoints = self.endpoints(namespace, owner)
        if endpoints is None or endpoints.modbus is None:
            return None
        modbus = ModbusTcpClient("127.0.0.1", port=endpoints.modbus, timeout=2, retries=0)
        try:
            if not modbus.connect():
                return None
            words = 2 if kind in ("REAL", "DINT", "UDINT") else 1
            if table in ("coils", "discreteInputs"):
                read_bits = modbus.read_coils if table == "coils" else modbus.read_discrete_inputs
                bits = read_bits(address, count=1, device_id=1)
                return None if bits.isError() else bool(bits.bits[0])
            read = modbus.read_input_registers if table == "inputRegisters" else modbus.read_holding_registers
            response = read(address, count=words, device_id=1)
            if response.isError():
                return None
            return decode_registers(response.registers, kind)
        finally:
            modbus.close()

    def wait(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll until `condition()` is truthy; return it. Fails with what was awaited."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = condition()
            except (ApiException, OSError) as error:
                last = error
            else:
                if last:
                    return last
            time.sleep(0.2)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def decode_registers(registers: Sequence[int], kind: str) -> Any:
    raw = struct.pack(">" + "H" * len(registers), *registers)
    if kind == "REAL":
        return round(struct.unpack(">f", raw)[0], 3)
    if kind == "UDINT":
        return struct.unpack(">I", raw)[0]
    if kind == "DINT":
        return struct.unpack(">i", raw)[0]
    if kind == "INT":
        return struct.unpack(">h", raw)[0]
    return registers[0]
