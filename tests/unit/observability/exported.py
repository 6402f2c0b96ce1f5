"""The series the three processes really export, found by instantiating their metrics classes.

Nothing here names a metric: every class defined in a metrics module is built (with a fresh CollectorRegistry where its
constructor takes one) and its registries are collected, so a renamed or added metric shows up here by itself.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

METRICS_MODULES = ("shopfloor_operator.metrics", "shopfloor_vplc.metrics", "shopfloor_bridge.metrics")
PREFIX = "shopfloor_"

# The series names Prometheus stores for each family type (prometheus_client strips `_total` from counter families).
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


@dataclass(frozen=True)
class Series:
    name: str
    family: str
    type: str
    module: str
    labels: frozenset[str] | None  # None: the family had no samples, so its label names are unknown


def metrics_instances(module: ModuleType) -> list[object]:
    """Each metrics class of the module, built the way its constructor allows."""
    built = []
    cls: Any  # constructors differ per module
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ != module.__name__:
            continue
        parameters = inspect.signature(cls).parameters
        required = [
            name
            for name, p in parameters.items()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if set(required) - {"registry"}:
            continue
        built.append(cls(registry=CollectorRegistry()) if "registry" in parameters else cls())
    return built


def _probe_labels(instance: object) -> None:
    """Create one child of every labelled metric, so label names appear in the collected samples."""
    for value in vars(instance).values():
        if isinstance(value, MetricWrapperBase):
            names = getattr(value, "_labelnames", ())  # no public accessor in prometheus_client
            if names:
                value.labels(*("probe" for _ in names))


def series_of(registry: CollectorRegistry, module: str, only_prefixed: bool) -> list[Series]:
    found = []
    for family in registry.collect():
        if only_prefixed and not family.name.startswith(PREFIX):
            continue
        by_name: dict[str, set[str]] = {}
        for sample in family.samples:
            by_name.setdefault(sample.name, set()).update(sample.labels)
        for suffix in SERIES_SUFFIXES.get(family.type, ("",)):
            name = family.name + suffix
            labels = by_name.get(name)
            found.append(
                Series(name, family.name, family.type, module, frozenset(labels) if labels is not None else None)
            )
    return found


@cache
def exported_series() -> dict[str, Series]:
    """Series name -> what exports it, over the three processes."""
    series: list[Series] = []
    for module_name in METRICS_MODULES:
        module = importlib.import_module(module_name)
        for instance in metrics_instances(module):
            _probe_labels(instance)
            for registry in {id(r): r for r in vars(instance).values() if isinstance(r, CollectorRegistry)}.values():
                series += series_of(registry, module_name, only_prefixed=False)
    # Anything a module registered on the global registry at import time.
    series += series_of(REGISTRY, "global", only_prefixed=True)
    return {each.name: each for each in series}


def modules_with_series() -> set[str]:
    return {each.module for each in exported_series().values()}
