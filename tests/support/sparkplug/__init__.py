"""Decodes Sparkplug B payloads with code generated from Eclipse Tahu's official schema, independent of the bridge.

The bridge encodes with its own subset schema (workloads/shopfloor_bridge/sparkplug/). To check its bytes against the
standard rather than against itself, tests decode with the `sparkplug_b_pb2` module that the `pysparkplug` package
(Apache-2.0, on PyPI) generates from Tahu's `sparkplug_b.proto`. The package itself pins paho-mqtt < 2, which the
bridge cannot use, so its wheel is fetched once with pip (no dependencies) into the user cache and only the generated
module is loaded from it.
"""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

from shopfloor_localsite.build import cache_root

PACKAGE = "pysparkplug"
VERSION = "0.6.1"
MODULE_IN_WHEEL = "pysparkplug/_protobuf/sparkplug_b_pb2.py"

# Sparkplug B datatype codes used in metrics.
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING = 9, 10, 11, 12


def _generated_module_file() -> Path:
    folder = cache_root() / f"{PACKAGE}-{VERSION}"
    target = folder / "sparkplug_b_pb2.py"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(folder),
            f"{PACKAGE}=={VERSION}",
        ],
        check=True,
    )
    wheel = next(folder.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        content = archive.read(MODULE_IN_WHEEL)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(content)
    tmp.rename(target)
    return target


@functools.cache
def schema_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tahu_sparkplug_b_pb2", _generated_module_file())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def decode(payload: bytes) -> Any:
    """The official `Payload` message parsed from `payload`."""
    message = schema_module().Payload()
    message.ParseFromString(payload)
    return message


def metric_value(metric: Any) -> Any:
    """The value a metric carries, or None when it is flagged null."""
    if metric.is_null:
        return None
    which = metric.WhichOneof("value")
    return None if which is None else getattr(metric, which)
