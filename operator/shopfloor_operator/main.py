"""`shopfloor-operator`: settings from the environment and flags, kopf wiring, metrics and health endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from kubernetes import client, config

from shopfloor_operator import peering
from shopfloor_operator.children import REQUEST_THREADS
from shopfloor_operator.controller import Controller
from shopfloor_operator.handlers import register
from shopfloor_operator.settings import OperatorSettings, effective_priority, settings_from_environment
from shopfloor_operator.witness import ApiProbe, WitnessServer

log = logging.getLogger("shopfloor_operator")
RECONCILE_THREADS = 8


class ApiRetries:
    """kopf retries failed API requests with these delays: forever, at most 2 s apart. Its default grows to 21 s,
    so after an API outage the watches (and with them the Leases the failover is judged on) came back that late."""

    def __iter__(self) -> Iterator[float]:
        return itertools.chain((0.5, 1.0), itertools.repeat(2.0))


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    configured = kopf.OperatorSettings()
    # Without timeouts a silent connection (a load balancer dropping it) freezes watches forever.
    configured.watching.server_timeout = settings.watch_timeout_seconds
    configured.watching.client_timeout = settings.watch_timeout_seconds + 15
    configured.watching.connect_timeout = 10
    configured.watching.inactivity_timeout = settings.watch_timeout_seconds + 30
    configured.networking.error_backoffs = ApiRetries()
    configured.peering.name = settings.peering_name
    configured.peering.priority = effective_priority(settings)
    configured.peering.standalone = settings.standalone
    configured.peering.mandatory = not settings.standalone
    configured.peering.clusterwide = not settings.namespaces
    configured.posting.level = logging.WARNING  # our own Events describe transitions; kopf's would duplicate them
    configured.execution.max_workers = 8
    return configured


def load_api_client() -> client.ApiClient:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = RECONCILE_THREADS + REQUEST_THREADS
    return client.ApiClient(configuration)


async def run(
    settings: OperatorSettings,
    api_client: client.ApiClient,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    controller: Controller | None = None,
) -> Controller:
    """Run until stopped. Pass a `controller` to inspect it (its metrics) while the operator runs."""
    controller = controller or Controller(api_client, settings)
    # Reconciles block on HTTP in worker threads: allow as many as the client's connection pool.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=RECONCILE_THREADS))
    registry = kopf.OperatorRegistry()
    register(registry, controller)

    @kopf.on.probe(id="reconciling", registry=registry)
    def reconciling(**_: Any) -> bool:
        return True

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo | None:
        return _connection_info(api_client)

    if settings.metrics_port:
        controller.metrics.serve(settings.metrics_port)
    # Whether the API server answers: Lease expiry waits while it does not, and runtimes ask through the witness.
    probe = ApiProbe(api_client, controller.leases)
    await asyncio.to_thread(probe.start)
    witness = WitnessServer(probe, controller.leases, settings.witness_port) if settings.witness_port else None
    if witness is not None:
        await witness.start()
    # kopf waits silently for a missing peering object: create it, or say loudly what to create.
    first_contact = asyncio.create_task(peering.watch_over(api_client, settings), name="peering first contact")
    try:
        await kopf.operator(
            registry=registry,
            settings=kopf_settings(settings),
            liveness_endpoint=settings.liveness_endpoint or None,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        first_contact.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first_contact
        if witness is not None:
            await witness.stop()
        await asyncio.to_thread(probe.stop)
        controller.close()
    return controller


def _connection_info(api_client: client.ApiClient) -> kopf.ConnectionInfo:
    """kopf uses the same credentials as our REST client (one kubeconfig, one identity). In a pod that is the
    projected ServiceAccount token: the client re-reads it through its refresh hook (kopf calls this again on a 401,
    so a rotated token is picked up) and stores it as `bearer <token>`, lower case."""
    configuration = api_client.configuration
    if configuration.refresh_api_key_hook is not None:
        configuration.refresh_api_key_hook(configuration)
    token = (configuration.api_key or {}).get("authorization", "") or (configuration.api_key or {}).get(
        "BearerToken", ""
    )
    scheme, _, credential = token.strip().partition(" ")
    if scheme.lower() == "bearer" and credential:
        token = credential
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        token=token.strip() or None,
        scheme="Bearer" if token else None,
    )


def main(argv: list[str] | None = None) -> None:
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one line per indexed event otherwise
    settings = settings_from_environment(sys.argv[1:] if argv is None else argv)
    asyncio.run(run(settings, load_api_client()))


if __name__ == "__main__":
    main()
