"""Manifest + program -> what the servers and the I/O scanner serve; every error names the manifest field."""

from __future__ import annotations

from typing import Any

import pytest

from shopfloor_api.virtualplc import VirtualPLCSpec
from shopfloor_st import compile_source
from shopfloor_vplc.bindings import (
    BindingError,
    check_compatible,
    device_configs,
    modbus_bindings,
    opcua_variables,
    safe_state_variables,
)
from shopfloor_vplc.modbus_codec import Table

PROGRAM = """TYPE Tank : STRUCT Level : REAL; Full : BOOL; END_STRUCT; END_TYPE
PROGRAM Main
VAR
  Level : REAL;
  Pump : BOOL;
  Count : DINT;
  Name : STRING;
  T : Tank;
  io_rio_1_ok : BOOL;
END_VAR
Count := Count + 1;
END_PROGRAM
"""


def spec(**fields: Any) -> VirtualPLCSpec:
    return VirtualPLCSpec.model_validate({"program": {"source": PROGRAM}, **fields})


def modbus(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"modbus": {"map": list(entries)}}


@pytest.fixture(scope="module")
def program() -> Any:
    return compile_source(PROGRAM, "main.st")


def test_types_come_from_the_program(program: Any) -> None:
    entries = [
        {"variable": "level", "table": "holdingRegisters", "address": 0},
        {"variable": "T.Full", "table": "coils", "address": 0},
    ]
    level, full = modbus_bindings(spec(io=modbus(*entries)), program)
    assert (level.variable, level.type_name, level.width) == ("Level", "REAL", 2)
    assert (full.variable, full.table, full.type_name) == ("T.Full", Table.COILS, "BOOL")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            [{"variable": "Nope", "table": "coils", "address": 0}],
            "spec.io.modbus.map[0].variable: Nope is not declared",
        ),
        ([{"variable": "Count", "table": "coils", "address": 0}], "spec.io.modbus.map[0]: coils hold BOOL variables"),
        ([{"variable": "Name", "table": "inputRegisters", "address": 0}], "type STRING cannot be mapped"),
        ([{"variable": "T.Nope", "table": "coils", "address": 0}], "spec.io.modbus.map[0].variable: T.Nope cannot be"),
        (
            [
                {"variable": "Level", "table": "holdingRegisters", "address": 0},
                {"variable": "Count", "table": "holdingRegisters", "address": 1},
            ],
            "spec.io.modbus.map: Count overlaps Level at holdingRegisters 1",
        ),
    ],
)
def test_errors_name_the_field(program: Any, entries: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(BindingError, match=message.replace("[", r"\[").replace("]", r"\]")):
        modbus_bindings(spec(io=modbus(*entries)), program)


def test_safe_state_keys_must_exist(program: Any) -> None:
    assert safe_state_variables(spec(safeState={"pump": False}), program) == {"Pump": False}
    with pytest.raises(BindingError, match=r"spec.safeState.Valve: Valve is not declared in Main"):
        safe_state_variables(spec(safeState={"Valve": False}), program)


def test_field_devices_get_health_variables_the_program_declares(program: Any) -> None:
    device = {
        "name": "rio-1",
        "modbus": {"host": "127.0.0.1", "port": 1502},
        "inputs": [{"variable": "Level", "table": "inputRegisters", "address": 0}],
        "outputs": [{"variable": "Pump", "table": "coils", "address": 0}],
    }
    (config,) = device_configs(spec(cycleTime="20ms", io={"fieldDevices": [device]}), program)
    assert config.ok_variable == "io_rio_1_ok"  # declared spelling, matched case-insensitively
    assert config.quality_variable is None  # not declared: not written
    assert config.poll_interval_s == 0.02  # pollInterval defaults to the cycle time
    assert not config.hold_last_value


def test_online_change_must_keep_what_is_mapped_and_served(program: Any) -> None:
    current = modbus_bindings(spec(io=modbus({"variable": "Count", "table": "inputRegisters", "address": 0})), program)
    retyped = compile_source(PROGRAM.replace("Count : DINT;", "Count : INT;"), "main.st")
    the_spec = spec(io=modbus({"variable": "Count", "table": "inputRegisters", "address": 0}))
    assert check_compatible(the_spec, retyped, current) == (
        "Count changes type from DINT to INT while mapped to Modbus"
    )
    served = opcua_variables(program)
    assert ("Name", "STRING") in served and all(name != "T" for name, _ in served)
    without_name = compile_source(PROGRAM.replace("  Name : STRING;\n", ""), "main.st")
    assert check_compatible(the_spec, without_name, current, served) == (
        "Name is served over OPC UA: removing it needs a restart"
    )
    assert check_compatible(the_spec, program, current, served) is None
