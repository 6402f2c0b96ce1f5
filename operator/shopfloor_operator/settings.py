"""Operator settings: environment variables `SHOPFLOOR_*` and command-line flags, defaults from DESIGN.md §2."""

from __future__ import annotations

import argparse
import json
import os
import random
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shopfloor_api.common import Duration

ENV_PREFIX = "SHOPFLOOR_"


class OperatorSettings(BaseModel):
    """How the operator renders and replaces workloads; one instance per process, passed to builders explicitly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    realtime_node_selector: dict[str, str] = Field(
        default_factory=lambda: {"feature.node.kubernetes.io/kernel-config.PREEMPT_RT": "true"},
        description="Node labels of real-time nodes (Node Feature Discovery's PREEMPT_RT label by default).",
    )
    realtime_toleration_key: str = Field("shopfloor.io/realtime", description="Taint key of real-time nodes.")
    realtime_toleration_effect: str = Field("NoSchedule", description="Taint effect of real-time nodes.")
    node_lost_grace: Duration = Field(
        Duration("10s"),
        description=(
            "How long a pod that holds no Lease (pending, starting) may sit on a NotReady node before it is "
            "replaced; a pod holding a Lease moves only when its Lease expires."
        ),
    )
    activation_timeout: Duration = Field(
        Duration("60s"),
        description=(
            "How long a deployed revision may go without its runtime reporting it active, counted from the pod's "
            "Ready, before the revision is marked failed (and rolled back, when there is a last known good)."
        ),
    )
    namespaces: list[str] = Field(default_factory=list, description="Watched namespaces; empty: cluster-wide.")
    vplc_image: str = Field("ghcr.io/shopfloor/shopfloor-vplc:0.1.0", description="Default vPLC runtime image.")
    bridge_image: str = Field("ghcr.io/shopfloor/shopfloor-bridge:0.1.0", description="Default bridge image.")
    image_pull_policy: str = Field("IfNotPresent", description="Pull policy of workload images.")
    termination_grace_seconds: int = Field(
        30, ge=1, description="Grace given to a workload pod to write its safe state and checkpoint."
    )
    operator_namespace: str = Field("shopfloor-system", description="Namespace the operator runs in.")
    operator_pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "shopfloor-operator"},
        description="Labels of the operator's pods, allowed through workload NetworkPolicies.",
    )
    scraper_namespace_labels: dict[str, str] = Field(
        default_factory=lambda: {"kubernetes.io/metadata.name": "monitoring"},
        description="Namespace labels of metrics scrapers, allowed to reach the metrics port.",
    )
    health_port: int = Field(8080, ge=1, le=65535, description="Workloads' /healthz, /readyz and /metrics port.")
    metrics_port: int = Field(8090, ge=0, le=65535, description="The operator's /metrics port; 0 disables it.")
    liveness_endpoint: str = Field("http://0.0.0.0:8091/healthz", description="The operator's /healthz endpoint.")
    peering_name: str = Field("shopfloor", description="kopf peering object; replicas with it elect one active.")
    priority: int | None = Field(
        None,
        description=(
            "Peering priority: the highest live replica acts, the others wait. Default: random per process, because "
            "kopf freezes every replica when two share a priority."
        ),
    )
    standalone: bool = Field(False, description="Skip peering (a single replica, development and tests).")
    witness_port: int = Field(
        8092, ge=0, le=65535, description="Port of the witness runtimes ask when they cannot renew; 0 disables it."
    )
    witness_url: str = Field(
        "http://shopfloor-operator.shopfloor-system:8092/witness",
        description="The witness' URL as workloads reach it (the chart's Service); empty: runtimes have no witness.",
    )
    resync_seconds: float = Field(30.0, gt=0, description="Period of the level-based resync of every object.")
    watch_timeout_seconds: int = Field(60, gt=0, description="Server-side watch timeout; reconnects after it.")

    @classmethod
    def from_sources(cls, environ: Mapping[str, str], argv: list[str] | None = None) -> OperatorSettings:
        """Defaults, overridden by `SHOPFLOOR_<FIELD>` variables, overridden by `--<field>` flags."""
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = _parse(raw, field.annotation)
        parser = argparse.ArgumentParser(prog="shopfloor-operator", description="Run the Shopfloor operator.")
        for name, field in cls.model_fields.items():
            flag = "--" + name.replace("_", "-")
            if field.annotation is bool:  # `--standalone` alone means true; `--standalone false` still works
                parser.add_argument(flag, dest=name, default=None, nargs="?", const="true", help=field.description)
            else:
                parser.add_argument(flag, dest=name, default=None, help=field.description)
        for name, raw in vars(parser.parse_args(argv or [])).items():
            if raw is not None:
                values[name] = _parse(raw, cls.model_fields[name].annotation)
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise SystemExit(f"shopfloor-operator: invalid settings:\n{error}") from None


def effective_priority(settings: OperatorSettings) -> int:
    return settings.priority if settings.priority is not None else random.randint(1, 1_000_000)


def _parse(raw: str, annotation: Any) -> Any:
    """Flags and variables are strings: JSON for maps, comma lists for lists, plain text otherwise."""
    text = str(annotation)
    if text.startswith("dict"):
        return json.loads(raw) if raw.strip().startswith("{") else dict(item.split("=", 1) for item in raw.split(","))
    if text.startswith("list"):
        return [item.strip() for item in raw.split(",") if item.strip()]
    if annotation is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return raw


def settings_from_environment(argv: list[str] | None = None) -> OperatorSettings:
    return OperatorSettings.from_sources(os.environ, argv)
