"""Decodes Sparkplug B payloads with Eclipse Tahu's official schema, compiled at test time.

The schema (sparkplug_b.proto, EPL-2.0, unmodified from eclipse/tahu) is compiled with grpcio-tools into a temporary
directory on first use, so tests check the bridge's bytes against the standard rather than against its own encoder.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from grpc_tools import protoc

SCHEMA = Path(__file__).with_name("sparkplug_b.proto")

# Sparkplug B datatype codes used in metrics.
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING = 9, 10, 11, 12


@functools.cache
def schema_module() -> ModuleType:
    out = Path(tempfile.mkdtemp(prefix="sparkplug-schema-"))
    rc = protoc.main(["protoc", f"--proto_path={SCHEMA.parent}", f"--python_out={out}", str(SCHEMA)])
    if rc != 0:
        raise RuntimeError(f"protoc failed on {SCHEMA} (exit {rc})")
    spec = importlib.util.spec_from_file_location("tahu_sparkplug_b_pb2", out / "sparkplug_b_pb2.py")
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
