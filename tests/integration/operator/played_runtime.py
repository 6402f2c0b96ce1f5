"""A runtime's Lease played for operator tests that run no runtime: the runtime's own lock (shopfloor_inpod.lease)
renews it and carries the report, and gives it up when its pod is deleted, as the runtime does on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from kubernetes import client

from shopfloor_inpod.lease import LeaseLock


class PlayedRuntime:
    def __init__(self, api: client.ApiClient, namespace: str, lease: str, pod: str) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.pod = namespace, pod
        self.lock = LeaseLock(api, namespace, lease, pod)
        self._loop = asyncio.new_event_loop()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"played-{pod}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        renewing = asyncio.create_task(self.lock.run())
        try:
            while not self._stopped.is_set():
                if await asyncio.to_thread(self._pod_deleted):
                    break  # SIGTERM: the runtime writes its final report and gives the Lease up
                await asyncio.sleep(0.2)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        if not self._stopped.is_set():
            await asyncio.to_thread(self.lock.release)

    def _pod_deleted(self) -> bool:
        try:
            pod = self.core.read_namespaced_pod(self.pod, self.namespace)
        except client.ApiException as error:
            return error.status == 404
        return pod.metadata.deletion_timestamp is not None

    def report(self, annotations: dict[str, str]) -> None:
        self.lock.update(annotations)

    def stop(self) -> None:
        """The runtime is gone without a word (its Lease expires on its own)."""
        self._stopped.set()
        self._thread.join(timeout=10)
