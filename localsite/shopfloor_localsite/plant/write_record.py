"""What a plant device saw written, and by whom: the evidence that exactly one controller drove the process.

Every write request a device serves is recorded (`RemoteIODevice.writes`) with the device's own clocks and the
writer's connection as the device sees it. On the site a runtime binds its Modbus client sockets to its pod's
address (`status.podIP`, in the loopback pod range; each node hands out its own /24), so the peer address says
which pod wrote. `overlapping_writes` then counts, from the device's record alone, the writes that came from a
controller after another controller had taken over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client


@dataclass(frozen=True)
class DeviceWrite:
    """One write request as the device served it."""

    device: str
    monotonic_ns: int  # time.monotonic_ns() on the device when it served the request
    wall_time: float  # time.time() at the same moment
    peer_host: str  # the writer's address as the device sees it (on the site: the writer's pod IP)
    peer_port: int
    unit_id: int
    function_code: int  # 5, 6, 15, 16 or 23
    table: str  # "coils" or "holdingRegisters", as in a VirtualPLC's io tables
    address: int  # 0-based PDU address of the first value
    values: tuple[int, ...]  # coils as 0/1, registers as 16-bit words


def writers_in_order(writes: Iterable[DeviceWrite], holder_of: Callable[[str], str]) -> list[str]:
    """Each writer once, in the order of its first write."""
    seen: list[str] = []
    for write in sorted(writes, key=lambda w: w.monotonic_ns):
        writer = holder_of(write.peer_host)
        if writer not in seen:
            seen.append(writer)
    return seen


def overlaps(writes: Iterable[DeviceWrite], holder_of: Callable[[str], str]) -> list[DeviceWrite]:
    """The writes made by a writer after a later writer had made its first write: a controller still driving the
    process after another one took over. Empty when control passed cleanly from one writer to the next.

    `holder_of` maps a peer address to the writer's name (e.g. `PodAddressBook`); writes from the same name are
    one writer, whatever port they came from."""
    ordered = sorted(writes, key=lambda w: w.monotonic_ns)
    started: dict[str, int] = {}  # writer -> rank in the order writers started
    found: list[DeviceWrite] = []
    for write in ordered:
        writer = holder_of(write.peer_host)
        if writer not in started:
            started[writer] = len(started)
        elif started[writer] < len(started) - 1:
            found.append(write)
    return found


def overlapping_writes(writes: Iterable[DeviceWrite], holder_of: Callable[[str], str]) -> int:
    """How many writes came from a writer after a later writer had started (0 = never two controllers at once)."""
    return len(overlaps(writes, holder_of))


class PodAddressBook:
    """Peer address -> pod (`namespace/name`), from the pods' `status.podIP` in the API.

    It remembers every pod it has seen, so a pod deleted after writing is still named; look-ups of an address not
    seen yet list the pods again. An address the API never gave a pod is returned as it is. Pod addresses may be
    reused after a pod is deleted (then the latest pod wins); the site gives each node its own range, so a PLC
    moved to another node never shares its old pod's address. Call `refresh()` while the pods of interest exist
    (e.g. before a fault that deletes them)."""

    def __init__(self, api: client.ApiClient, label_selector: str = "") -> None:
        self.core = client.CoreV1Api(api)
        self.label_selector = label_selector
        self.pods: dict[str, str] = {}

    def refresh(self) -> dict[str, str]:
        pods: Sequence[Any] = self.core.list_pod_for_all_namespaces(label_selector=self.label_selector).items
        for pod in pods:
            if pod.status is not None and pod.status.pod_ip:
                self.pods[pod.status.pod_ip] = f"{pod.metadata.namespace}/{pod.metadata.name}"
        return dict(self.pods)

    def __call__(self, address: str) -> str:
        if address not in self.pods:
            self.refresh()
        return self.pods.get(address, address)
