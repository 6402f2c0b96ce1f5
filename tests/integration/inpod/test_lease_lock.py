"""The Lease lock against the real API server: acquire, renew, report, hand over, supersede, fence.

Timing runs on a short lease (1 s) so fencing shows within a test; every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client, config

from shopfloor_api.runtime_contract import LockTiming
from shopfloor_inpod.lease import LeaseLock, LockState
from shopfloor_inpod.witness import witness_client
from shopfloor_localsite.site.uplink import Uplink
from shopfloor_operator.leases import LeaseObservations
from shopfloor_operator.witness import ApiProbe, WitnessServer
from tests.support.mosquitto import free_port
from tests.support.waiting import async_wait_for

pytestmark = pytest.mark.timeout(120)
SHORT = LockTiming(1.0)


def read_lease(api: client.ApiClient, namespace: str, name: str = "mixer-1") -> dict[str, Any]:
    lease = client.CoordinationV1Api(api).read_namespaced_lease(name, namespace)
    return dict(api.sanitize_for_serialization(lease))


def unreachable_api(tmp_path: Path) -> client.ApiClient:
    """A kubeconfig whose server is a loopback port nobody listens on: the API is 'lost'."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: gone, cluster: {{server: "https://127.0.0.1:{free_port()}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: c, context: {{cluster: gone, user: u}}}}]
current-context: c
"""
    )
    return config.new_client_from_config(str(path))


@contextlib.asynccontextmanager
async def running(lock: LeaseLock) -> AsyncIterator[LeaseLock]:
    task = asyncio.create_task(lock.run())
    try:
        yield lock
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def state_is(lock: LeaseLock, state: LockState) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return lock.state is state

    return check


async def test_a_free_lease_is_acquired_renewed_and_reported(kube_api: client.ApiClient, namespace: str) -> None:
    lock = LeaseLock(kube_api, namespace, "mixer-1", "mixer-1-a", SHORT)
    lock.update({"shopfloor.io/state": "Loading"})
    async with running(lock):
        await async_wait_for(state_is(lock, LockState.HOLDING), timeout=10, what="Lease acquired")
        assert lock.may_drive() and lock.epoch == 1
        first = await asyncio.to_thread(read_lease, kube_api, namespace)
        assert first["spec"]["holderIdentity"] == "mixer-1-a"
        assert first["spec"]["leaseTransitions"] == 1
        lock.update({"shopfloor.io/state": "Running"})

        async def renewed_with_running() -> bool:
            lease = await asyncio.to_thread(read_lease, kube_api, namespace)
            spec, annotations = lease["spec"], lease["metadata"]["annotations"]
            renewed = spec["renewTime"] != first["spec"]["renewTime"]
            return bool(renewed and annotations["shopfloor.io/state"] == "Running")

        await async_wait_for(renewed_with_running, timeout=10, what="a renewal carrying the new state")
        assert lock.epoch == 1  # renewing is not a new holder


def handed_to(lease: dict[str, Any], holder: str) -> dict[str, Any]:
    handed = copy.deepcopy(lease)
    handed["spec"].update(holderIdentity=holder, leaseTransitions=lease["spec"]["leaseTransitions"] + 1)
    return handed


async def test_a_second_runtime_waits_and_a_hand_over_supersedes_the_first(
    kube_api: client.ApiClient, namespace: str
) -> None:
    first = LeaseLock(kube_api, namespace, "mixer-1", "mixer-1-a", SHORT)
    second = LeaseLock(kube_api, namespace, "mixer-1", "mixer-1-b", SHORT)
    async with running(first):
        await async_wait_for(state_is(first, LockState.HOLDING), timeout=10, what="first holds")
        async with running(second):
            await asyncio.to_thread(second.try_acquire_or_renew)
            assert second.state is LockState.WAITING and not second.may_drive()
            # What the operator does once the first's Lease expired: give it to the second, guarded by version.
            lease = await asyncio.to_thread(read_lease, kube_api, namespace)
            coordination = client.CoordinationV1Api(kube_api)
            try:
                await asyncio.to_thread(
                    coordination.replace_namespaced_lease, "mixer-1", namespace, handed_to(lease, "mixer-1-b")
                )
            except client.ApiException as exc:
                assert exc.status == 409  # the first renewed in between: try again on the fresh copy
                lease = await asyncio.to_thread(read_lease, kube_api, namespace)
                await asyncio.to_thread(
                    coordination.replace_namespaced_lease, "mixer-1", namespace, handed_to(lease, "mixer-1-b")
                )
            await async_wait_for(state_is(first, LockState.SUPERSEDED), timeout=10, what="first superseded")
            await async_wait_for(state_is(second, LockState.HOLDING), timeout=10, what="second holds")
            assert not first.may_drive() and not first.may_write_safe_state()
            assert second.epoch == 2
            # The first never takes it back, whatever it still has queued: its copy is stale (409) and it knows.
            assert await asyncio.to_thread(first.try_acquire_or_renew) is False
            final = await asyncio.to_thread(read_lease, kube_api, namespace)
            assert final["spec"]["holderIdentity"] == "mixer-1-b"


async def test_release_lets_the_next_pod_take_the_lease_at_once(kube_api: client.ApiClient, namespace: str) -> None:
    first = LeaseLock(kube_api, namespace, "mixer-1", "mixer-1-a", SHORT)
    async with running(first):
        await async_wait_for(state_is(first, LockState.HOLDING), timeout=10, what="first holds")
    assert await asyncio.to_thread(first.release)
    assert (await asyncio.to_thread(read_lease, kube_api, namespace))["spec"]["holderIdentity"] in (None, "")
    second = LeaseLock(kube_api, namespace, "mixer-1", "mixer-1-b", SHORT)
    assert await asyncio.to_thread(second.try_acquire_or_renew)
    assert second.epoch == 2


@contextlib.contextmanager
def through_uplink(kubeconfig: Path, tmp_path: Path) -> Iterator[tuple[client.ApiClient, Uplink]]:
    """An API client whose connections pass this node's uplink (the switch a test can cut)."""
    document = yaml.safe_load(kubeconfig.read_text())
    server = urlsplit(document["clusters"][0]["cluster"]["server"])
    uplink = Uplink("test-node", {"kube-apiserver": (server.hostname or "127.0.0.1", server.port or 443)}).start()
    try:
        document["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{uplink.port('kube-apiserver')}"
        path = tmp_path / "uplink.kubeconfig"
        path.write_text(yaml.safe_dump(document))
        api = config.new_client_from_config(str(path))
        try:
            yield api, uplink
        finally:
            api.close()
    finally:
        uplink.stop()


async def test_a_runtime_that_cannot_renew_fences_itself_within_its_lease(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    with through_uplink(kubeconfig, tmp_path) as (api, uplink):
        lock = LeaseLock(api, namespace, "mixer-1", "mixer-1-a", SHORT)
        changes: list[LockState] = []
        lock.listeners.append(lambda state, _reason: changes.append(state))
        async with running(lock):
            await async_wait_for(state_is(lock, LockState.HOLDING), timeout=10, what="holding")
            uplink.cut()
            cut_at = time.monotonic()
            await async_wait_for(state_is(lock, LockState.FENCED), timeout=5, what="fenced")
            # Fenced at the deadline its last renewal (started before the cut) gave, not later.
            assert time.monotonic() - cut_at <= SHORT.lease_duration_s - SHORT.fence_margin_s + 0.3
            assert not lock.may_drive()
            uplink.heal()
            # Nobody took the Lease meanwhile: the same runtime holds it again, at the same epoch.
            await async_wait_for(state_is(lock, LockState.HOLDING), timeout=10, what="holding again")
        assert changes == [LockState.HOLDING, LockState.FENCED, LockState.HOLDING]
        assert lock.epoch == 1


@contextlib.asynccontextmanager
async def operator_witness(api: client.ApiClient) -> AsyncIterator[tuple[str, LeaseObservations]]:
    leases = LeaseObservations()
    probe = ApiProbe(api, leases)
    await asyncio.to_thread(probe.check_once)
    port = free_port()
    server = WitnessServer(probe, leases, port, host="127.0.0.1")
    await server.start()
    try:
        yield f"http://127.0.0.1:{port}/witness", leases
    finally:
        await server.stop()


async def test_the_witness_keeps_a_runtime_driving_when_the_api_is_down_for_everyone(
    kube_api: client.ApiClient, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    # The operator cannot reach the API server either (its own client points nowhere): its witness says so.
    async with operator_witness(unreachable_api(tmp_path)) as (url, leases):
        with through_uplink(kubeconfig, tmp_path) as (api, uplink):
            witness = witness_client(url, SHORT.witness_timeout_s)
            lock = LeaseLock(api, namespace, "mixer-1", "mixer-1-a", SHORT, witness=witness)
            async with running(lock):
                await async_wait_for(state_is(lock, LockState.HOLDING), timeout=10, what="holding")
                seen_before_the_cut = await asyncio.to_thread(read_lease, kube_api, namespace)
                leases.observe(("VirtualPLC", namespace, "mixer-1"), seen_before_the_cut)
                uplink.cut()
                cut_at = time.monotonic()

                async def long_past_the_deadline() -> bool:
                    return time.monotonic() - cut_at > 2.5 * SHORT.lease_duration_s and lock.witness_extensions >= 3

                await async_wait_for(long_past_the_deadline, timeout=15, what="witness answers past the deadline")
                assert lock.state is LockState.HOLDING and lock.may_drive()
            # The operator's promise for those answers: the Lease it saw before the cut, unchanged since, has not
            # expired on its clock, though far more than a lease period went by.
            view = leases.view(("VirtualPLC", namespace, "mixer-1"), seen_before_the_cut)
            assert view is not None and view.holder == "mixer-1-a" and not view.expired


async def test_the_witness_fences_a_runtime_whose_node_alone_is_cut_off(
    kube_api: client.ApiClient, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    async with operator_witness(kube_api) as (url, _leases):  # the operator reaches the API server
        with through_uplink(kubeconfig, tmp_path) as (api, uplink):
            lock = LeaseLock(api, namespace, "mixer-1", "mixer-1-a", SHORT, witness=witness_client(url, 0.3))
            async with running(lock):
                await async_wait_for(state_is(lock, LockState.HOLDING), timeout=10, what="holding")
                uplink.cut()
                await async_wait_for(state_is(lock, LockState.FENCED), timeout=5, what="fenced")
            assert lock.witness_extensions == 0
