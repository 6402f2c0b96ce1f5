"""A whole runtime in the test's event loop, on free loopback ports, with a program and manifest settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from shopfloor_vplc.plc_file import from_manifest_text
from shopfloor_vplc.program import compile_program
from shopfloor_vplc.retain import FileRetainStore
from shopfloor_vplc.runtime import PlcRuntime, RuntimeOptions
from tests.support.mosquitto import free_port
from tests.unit.vplc.manifests import plc_manifest

TANK = """PROGRAM Main
VAR
  LevelRaw : INT;
  Pump : BOOL;
  Count : DINT;
  Setpoint : INT := 500;
  Hang : BOOL;
  Ratio : REAL := 0.5;
  IO_RIO_1_OK : BOOL;
END_VAR
VAR RETAIN
  Starts : DINT;
END_VAR
Count := Count + 1;
Pump := LevelRaw > Setpoint;
WHILE Hang DO
  Count := Count + 1;
END_WHILE;
END_PROGRAM
"""

MODBUS_MAP = [
    {"variable": "Pump", "table": "coils", "address": 0},
    {"variable": "Hang", "table": "coils", "address": 1},
    {"variable": "Setpoint", "table": "holdingRegisters", "address": 0},
    {"variable": "Count", "table": "inputRegisters", "address": 0},
    {"variable": "Ratio", "table": "holdingRegisters", "address": 2},
    {"variable": "Starts", "table": "holdingRegisters", "address": 4},
    {"variable": "IO_RIO_1_OK", "table": "discreteInputs", "address": 0},
]


def field_device(port: int, name: str = "rio-1", on_loss: str = "Fault", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "modbus": {"host": "127.0.0.1", "port": port},
        "pollInterval": "5ms",
        "inputs": [{"variable": "LevelRaw", "table": "holdingRegisters", "address": 0}],
        "outputs": [{"variable": "Pump", "table": "coils", "address": 0}],
        "onLoss": on_loss,
        **extra,
    }


@contextlib.asynccontextmanager
async def running_plc(
    tmp_path: Path, source: str = TANK, isolated_scan: bool = True, **spec: Any
) -> AsyncIterator[PlcRuntime]:
    spec.setdefault("cycleTime", "5ms")
    spec.setdefault("io", {}).setdefault("modbus", {"map": MODBUS_MAP})
    spec.setdefault("safeState", {"Pump": False})
    plc = from_manifest_text(plc_manifest(source, **spec), str(tmp_path / "mixer.yaml"))
    program = compile_program(plc.source, plc.filename, plc.spec.program.entrypoint)
    options = RuntimeOptions(
        host="127.0.0.1",
        modbus_port=free_port(),
        opcua_port=free_port(),
        http_port=free_port(),
        retain_store=FileRetainStore(tmp_path / "mixer-1.retain.json"),
        retain_interval_s=0.2,
        filename=plc.filename,
        isolated_scan=isolated_scan,
    )
    runtime = PlcRuntime(plc.name, plc.spec, program, options)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.shutdown()


@contextlib.asynccontextmanager
async def modbus_client(runtime: PlcRuntime) -> AsyncIterator[AsyncModbusTcpClient]:
    assert runtime.modbus is not None
    client = AsyncModbusTcpClient("127.0.0.1", port=runtime.modbus.port, timeout=2, retries=0)
    assert await client.connect()
    try:
        yield client
    finally:
        client.close()
