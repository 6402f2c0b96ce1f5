"""Children go out concurrently: a pass waits for its slowest request, not their sum."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from shopfloor_operator.children import RECHECK_AFTER_SECONDS, ChildApplier, alongside
from shopfloor_operator.kube import KubeError, path_of


def manifest(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "line-1"}}


class BarrierKube:
    """Each apply waits until `parties` applies are in flight at once: sequential requests would never get there."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=10)
        self.applied: list[str] = []
        self.fail: set[str] = set()

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name in self.fail:
            raise KubeError(422, f'{{"message": "{name} is invalid"}}')
        self.barrier.wait()
        self.applied.append(name)
        return body


def test_a_batch_sends_its_requests_concurrently_and_once() -> None:
    kube = BarrierKube(parties=3)
    applier = ChildApplier(kube)  # type: ignore[arg-type]
    applier.start(*(("apply", manifest(name)) for name in ("a", "b", "c"))).wait()
    assert sorted(kube.applied) == ["a", "b", "c"]
    batch = applier.start(*(("apply", manifest(name)) for name in ("a", "b", "c")))
    assert batch.futures == []  # applied unchanged already: nothing sent
    applier.close()


def test_a_failed_request_fails_the_batch_after_the_others_finished() -> None:
    kube = BarrierKube(parties=2)
    kube.fail = {"bad"}
    applier = ChildApplier(kube)  # type: ignore[arg-type]
    with pytest.raises(KubeError, match="bad is invalid"):
        applier.start(("apply", manifest("a")), ("apply", manifest("bad")), ("apply", manifest("b"))).wait()
    assert sorted(kube.applied) == ["a", "b"]
    applier.close()


def test_the_blocks_own_failure_comes_before_the_batch_beside_it() -> None:
    kube = BarrierKube(parties=1)
    kube.fail = {"beside"}
    applier = ChildApplier(kube)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="pod refused"), alongside(applier.start(("apply", manifest("beside")))):
        raise RuntimeError("pod refused")
    with pytest.raises(KubeError, match="beside is invalid"), alongside(applier.start(("apply", manifest("beside")))):
        pass
    applier.close()


class StoreKube:
    """Objects by path; records every request."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("apply")
        self.objects[path_of(body)] = {**body, "metadata": {**body["metadata"], "uid": "u", "resourceVersion": "1"}}
        return body

    def get(self, path: str) -> dict[str, Any] | None:
        self.calls.append("get")
        return self.objects.get(path)


def test_settled_children_are_read_back_now_and_then_and_applied_only_when_edited() -> None:
    now = [0.0]
    kube = StoreKube()
    applier = ChildApplier(kube, clock=lambda: now[0])  # type: ignore[arg-type]
    child = {**manifest("plc-runtime"), "data": {"revision": "a"}}
    applier.start(("apply", child)).wait()
    applier.start(("apply", child)).wait()
    assert kube.calls == ["apply"]  # the second pass sends nothing
    now[0] += RECHECK_AFTER_SECONDS * 1.3
    applier.start(("apply", child)).wait()
    assert kube.calls == ["apply", "get"]  # as applied: a read, no write
    kube.objects[path_of(child)]["data"] = {"revision": "edited by hand"}
    now[0] += RECHECK_AFTER_SECONDS * 1.3
    applier.start(("apply", child)).wait()
    assert kube.calls == ["apply", "get", "get", "apply"]
    assert kube.objects[path_of(child)]["data"] == {"revision": "a"}
    applier.close()
