"""From a VirtualPLC spec and a compiled program to what the servers and the I/O scanner serve: Modbus bindings
with the variables' own types, device configurations, published variables. Errors name the manifest field."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from shopfloor_api.virtualplc import FieldDevice, ModbusMapEntry, VirtualPLCSpec
from shopfloor_vplc.field_io import DeviceConfig, health_variable_names
from shopfloor_vplc.modbus_codec import AddressMap, Binding, CodecError
from shopfloor_vplc.program import ProgramLike, find_variable


class BindingError(ValueError):
    """A manifest entry that does not fit the program; the message starts with the field path."""


_probes: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _probe(program: ProgramLike) -> Any:
    """An instance of `program` used only to resolve paths and their types (one per program)."""
    probe = _probes.get(program)
    if probe is None:
        probe = _probes[program] = program.instantiate()
    return probe


def variable_type(program: ProgramLike, path: str, field: str) -> tuple[str, str]:
    """(declared spelling, type name) of a variable path: `Level`, `Tank.Level`, `Trend[2]`."""
    head = path.replace("[", ".").split(".", 1)[0]
    if find_variable(program, head) is None:
        raise BindingError(f"{field}: {head} is not declared in {program.entrypoint}")
    try:
        where = _probe(program).path(path)
    except (KeyError, ValueError) as exc:
        raise BindingError(f"{field}: {path} cannot be resolved in {program.entrypoint}: {exc}") from None
    # The elementary IEC type (enumerations are INT); structures and arrays keep their own name and map nowhere.
    iec_type = getattr(where, "iec_type", None)
    return str(where.canonical), str(iec_type or where.type)


def entry_binding(program: ProgramLike, entry: ModbusMapEntry, field: str) -> Binding:
    variable, type_name = variable_type(program, entry.variable, f"{field}.variable")
    binding = Binding(variable, entry.table, entry.address, type_name, entry.word_order)
    try:
        AddressMap([binding])
    except CodecError as exc:
        raise BindingError(f"{field}: {exc}") from None
    return binding


def modbus_bindings(spec: VirtualPLCSpec, program: ProgramLike) -> list[Binding]:
    bindings = [
        entry_binding(program, entry, f"spec.io.modbus.map[{index}]") for index, entry in enumerate(spec.io.modbus.map)
    ]
    try:
        AddressMap(bindings)
    except CodecError as exc:
        raise BindingError(f"spec.io.modbus.map: {exc}") from None
    return bindings


def device_config(spec: VirtualPLCSpec, device: FieldDevice, index: int, program: ProgramLike) -> DeviceConfig:
    field = f"spec.io.fieldDevices[{index}]"
    inputs = [entry_binding(program, e, f"{field}.inputs[{i}]") for i, e in enumerate(device.inputs)]
    outputs = [entry_binding(program, e, f"{field}.outputs[{i}]") for i, e in enumerate(device.outputs)]
    ok_name, quality_name = health_variable_names(device.name)
    poll = device.poll_interval or spec.cycle_time
    return DeviceConfig(
        name=device.name,
        host=device.modbus.host,
        port=device.modbus.port,
        unit_id=device.modbus.unit_id,
        poll_interval_s=poll.seconds,
        inputs=inputs,
        outputs=outputs,
        hold_last_value=device.on_loss == "HoldLastValue",
        ok_variable=find_variable(program, ok_name),
        quality_variable=find_variable(program, quality_name),
        timeout_s=(timeout := max(0.2, min(2.0, 3 * poll.seconds))),
        loss_after_s=max(1.5, 5 * timeout),
    )


def device_configs(spec: VirtualPLCSpec, program: ProgramLike) -> list[DeviceConfig]:
    return [device_config(spec, device, index, program) for index, device in enumerate(spec.io.field_devices)]


def opcua_variables(program: ProgramLike) -> list[tuple[str, str]]:
    """(name, IEC type) of the program's top-level variables of elementary types, served over OPC UA."""
    found = []
    for name, info in program.variables.items():
        iec_type = getattr(info, "iec_type", None)
        if iec_type:
            found.append((name, str(iec_type)))
    return found


def published_variables(spec: VirtualPLCSpec, program: ProgramLike) -> list[str]:
    names: list[str] = [b.variable for b in modbus_bindings(spec, program)]
    if spec.io.opcua.enabled:
        names += [name for name, _ in opcua_variables(program)]
    return list(dict.fromkeys(names))


def safe_state_variables(spec: VirtualPLCSpec, program: ProgramLike) -> dict[str, object]:
    """safeState with the program's spelling of each name; unknown names are an error naming the key."""
    resolved: dict[str, object] = {}
    for name, value in spec.safe_state.items():
        declared, _ = variable_type(program, name, f"spec.safeState.{name}")
        resolved[declared] = value
    return resolved


def check_compatible(
    spec: VirtualPLCSpec,
    program: ProgramLike,
    current: Sequence[Binding],
    served: Sequence[tuple[str, str]] = (),
) -> str | None:
    """Why `program` cannot replace the running one under the same manifest, or None when it can.

    `current` are the Modbus and field-device bindings in use, `served` the (name, type) of the variables in the
    OPC UA address space: both are fixed while the runtime runs, so each must still exist with the same type.
    """
    try:
        new = modbus_bindings(spec, program)
        for device in device_configs(spec, program):
            new += list(device.inputs) + list(device.outputs)
        safe_state_variables(spec, program)
    except BindingError as exc:
        return str(exc)
    old_types = {(b.variable, b.table, b.address): b.type_name.upper() for b in current}
    for binding in new:
        old = old_types.get((binding.variable, binding.table, binding.address))
        if old is not None and old != binding.type_name.upper():
            return f"{binding.variable} changes type from {old} to {binding.type_name} while mapped to Modbus"
    still_served = dict(opcua_variables(program))
    for name, type_name in served:
        if name not in still_served:
            return f"{name} is served over OPC UA: removing it needs a restart"
        if still_served[name] != type_name:
            return f"{name} changes type from {type_name} to {still_served[name]} while served over OPC UA"
    return None
