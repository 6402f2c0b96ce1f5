"""Hot standby: the whole state of a running instance as bytes (`capture`), and back onto another instance (`restore`).

Everything a scan can change is in the image: every variable of the entry program and the globals, every FB
instance with its private fields (TON._start, CTU._prev, R_TRIG.M, user FBs), arrays, structures, strings. Both
sides run the same compiled revision, so the image holds only values, in a fixed walk order that is planned once
per Program (`StateLayout`) and compiled to Python like the program itself; a fingerprint of that walk guards it.

Fields of type SCAN_TIME (stdfb.HIDDEN_STATE) hold absolute times of the scan clock. Another node's clock differs,
so the image carries them relative to the capture's `now`, and restore rebuilds them on the restoring clock:
start_local = restore_now + (start_primary - capture_now). A timer therefore continues where it was.

The bytes come over the network from another pod, so the format is plain data (a struct header and JSON, never
pickle or eval) and every value is checked against its declared type before anything is written:

    magic b"SFSI" | u16 format version | u32 payload length | u32 CRC-32 of the payload | payload
    payload = JSON [program revision, layout fingerprint, [value, ...]]
"""

from __future__ import annotations

import hashlib
import json
import operator
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from shopfloor_st.context import Symbol
from shopfloor_st.st_types import ELEMENTARY, ArrayType, Elementary, EnumType, FbType, StringType, StructType, StType
from shopfloor_st.stdfb import SCAN_TIME

if TYPE_CHECKING:
    from shopfloor_st.program import Instance, Program

__all__ = ["FORMAT_VERSION", "StateImageError", "StateLayout", "capture", "decode", "layout_for", "restore"]

FORMAT_VERSION = 1
_MAGIC = b"SFSI"
_HEADER = struct.Struct("<4sHII")
_INT64 = (-(1 << 63), (1 << 63) - 1)

# A check takes the values of every leaf of one type at once, so that most of the work runs in C (set, map, min,
# max): validating 10,000 values costs about as much as reading them.
Check = Callable[[Sequence[Any]], bool]
_NONE = type(None)


class StateImageError(ValueError):
    """An image this instance cannot take; `reason` is one of "truncated", "corrupt", "version", "revision",
    "layout", "value" (for counting and rate-limited logging), the message says what exactly."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _are_bools(values: Sequence[Any]) -> bool:
    return set(map(type, values)) <= {bool}


def _are_reals(values: Sequence[Any]) -> bool:
    # JSON keeps 1.0 a float; an int is accepted too, since it is what the primary held
    return set(map(type, values)) <= {float, int}


def _ints_in(low: int, high: int) -> Check:
    def check(values: Sequence[Any]) -> bool:
        return not values or (set(map(type, values)) == {int} and low <= min(values) and max(values) <= high)

    return check


def _are_scan_times(values: Sequence[Any]) -> bool:
    return set(map(type, values)) <= {_NONE, int} and _ints_in(*_INT64)([v for v in values if v is not None])


def _strings_of(length: int) -> Check:
    def check(values: Sequence[Any]) -> bool:
        return set(map(type, values)) <= {str} and (not values or max(map(len, values)) <= length)

    return check


def _enum_values(allowed: frozenset[int]) -> Check:
    def check(values: Sequence[Any]) -> bool:
        return set(map(type, values)) <= {int} and set(values) <= allowed

    return check


def _arrays_of(lengths: Sequence[int], element: Check) -> Check:
    """Nested lists of exactly these lengths (one per dimension), elements checked all at once."""

    def check(values: Sequence[Any]) -> bool:
        rows = list(values)  # every array of this type at once: one element check for all their elements
        for length in lengths:
            inner: list[Any] = []
            for row in rows:
                if type(row) is not list or len(row) != length:
                    return False
                inner.extend(row)
            rows = inner
        return element(rows)

    return check


class _Checks:
    """Checks by type description, created once per distinct type."""

    def __init__(self) -> None:
        self._cache: dict[str, Check] = {"BOOL": _are_bools, "REAL": _are_reals, SCAN_TIME: _are_scan_times}

    def for_type(self, typ: StType) -> tuple[str, Check]:
        if isinstance(typ, Elementary):
            if typ.kind == "bool":
                return "BOOL", _are_bools
            if typ.kind == "real":
                return "REAL", _are_reals
            # subranges are checked on assignment; the base range is what the slot can hold
            low, high = (typ.base.low, typ.base.high) if typ.kind != "time" else _INT64
            return self._get(f"{typ.base.name}", lambda: _ints_in(low, high))
        if isinstance(typ, StringType):
            return self._get(f"STRING({typ.length})", lambda: _strings_of(typ.length))
        if isinstance(typ, EnumType):
            values = frozenset(typ.values.values())
            return self._get(f"ENUM{sorted(values)}", lambda: _enum_values(values))
        raise TypeError(f"no value check for {typ}")

    def _get(self, key: str, make: Callable[[], Check]) -> tuple[str, Check]:
        if key not in self._cache:
            self._cache[key] = make()
        return key, self._cache[key]


def _elementary_array(typ: ArrayType) -> bool:
    return isinstance(typ.elem, Elementary | StringType | EnumType)


class StateLayout:
    """The walk over one Program's state, compiled once: capture/restore code, value checks, fingerprint."""

    def __init__(self, program: Program) -> None:
        self._checks = _Checks()
        self._capture_lines = ["def _capture(_s, _g, _now):", "    _o = []", "    _a = _o.append"]
        self._restore_lines = ["def _restore(_s, _g, _now, _v):", "    _n = iter(_v).__next__"]
        self._loop_depth = 0
        self.checks: list[Check] = []  # one per value, in walk order
        self.paths: list[str] = []  # the variable each value belongs to, for messages
        self.descriptors: list[str] = []
        self._grouped: list[tuple[Callable[[list[Any]], Sequence[Any]], Check]] | None = None
        unit = program._unit
        self._scope("_g", unit.globals_scope.symbols.values(), "")
        self._scope("_s", program._scope.symbols.values(), "")
        self._capture_lines.append("    return _o")
        self._restore_lines.append("    return None")
        source = "\n".join(self._capture_lines + self._restore_lines) + "\n"
        namespace: dict[str, Any] = {}
        exec(compile(source, f"<state image of {program.entrypoint}>", "exec"), namespace)
        self.capture_values: Callable[[Any, Any, int], list[Any]] = namespace["_capture"]
        self.restore_values: Callable[[Any, Any, int, list[Any]], None] = namespace["_restore"]
        digest = hashlib.sha256(source.encode())
        digest.update("\n".join(self.descriptors).encode())
        self.fingerprint = digest.hexdigest()[:16]
        self.source = source

    # ---- planning ------------------------------------------------------------------------------------------------

    def _scope(self, obj: str, symbols: Iterable[Symbol], prefix: str) -> None:
        for symbol in symbols:
            if symbol.section == "VAR_TEMP" or symbol.constant:
                continue  # temporaries do not outlive a call; constants cannot change
            if symbol.section == "VAR_IN_OUT" and not isinstance(symbol.type, Elementary | StringType | EnumType):
                continue  # a reference to the caller's variable, rebound at every call: the caller's walk has it
            self._value(f"{obj}.{symbol.attr}", symbol.type, f"{prefix}{symbol.name}")

    def _value(self, code: str, typ: StType, path: str) -> None:
        if isinstance(typ, ArrayType):
            if _elementary_array(typ):
                kind, check = self._checks.for_type(typ.elem)
                lengths = [high - low + 1 for low, high in typ.dims]
                key = f"ARRAY{lengths}:{kind}"
                self._leaf(code, path, key, self._checks._get(key, lambda: _arrays_of(lengths, check))[1], array=True)
            else:
                self._composite_array(code, typ, path)
        elif isinstance(typ, StructType):
            self._scope(code, typ.fields.values(), f"{path}.")
        elif isinstance(typ, FbType) and typ.standard is not None:
            self._standard_fb(code, typ, path)
        elif isinstance(typ, FbType):
            self._scope(code, typ.members.values(), f"{path}.")
        else:
            kind, check = self._checks.for_type(typ)
            self._leaf(code, path, kind, check)

    def _standard_fb(self, code: str, typ: FbType, path: str) -> None:
        cls = typ.standard
        hidden: tuple[tuple[str, str], ...] = getattr(cls, "HIDDEN_STATE", ())
        members = [s for s in typ.members.values() if s.section != "VAR_TEMP"]
        declared = {s.attr for s in members} | {name for name, _ in hidden}
        slots = set(getattr(cls, "__slots__", ())) - {"_g"}
        if declared != slots:  # a new standard FB whose state is not described would silently not be synced
            raise TypeError(f"standard FB {typ.name}: slots {sorted(slots - declared)} lack HIDDEN_STATE metadata")
        self._scope(code, members, f"{path}.")
        for name, type_name in hidden:
            where = f"{code}.{name}"
            if type_name == SCAN_TIME:
                self._scan_time(where, f"{path}.{name}")
            else:
                kind, check = self._checks.for_type(ELEMENTARY[type_name])
                self._leaf(where, f"{path}.{name}", kind, check)

    def _composite_array(self, code: str, typ: ArrayType, path: str) -> None:
        """Arrays of structures or FBs: a loop per dimension in the generated code, values expanded for checking."""
        start = len(self.checks)
        indent = "    " * (self._loop_depth + 1)
        element = code
        for _ in typ.dims:
            self._loop_depth += 1
            name = f"_e{self._loop_depth}"
            line = f"{indent}for {name} in {element}:"
            self._capture_lines.append(line)
            self._restore_lines.append(line)
            indent += "    "
            element = name
        self._value(element, typ.elem, f"{path}[]")
        self._loop_depth -= len(typ.dims)
        per_element_checks, per_element_paths = self.checks[start:], self.paths[start:]
        count = 1
        for low, high in typ.dims:
            count *= high - low + 1
        del self.checks[start:], self.paths[start:]
        self.checks.extend(per_element_checks * count)
        self.paths.extend(p for _ in range(count) for p in per_element_paths)
        self.descriptors.append(f"{path}: {count} elements")

    def _indent(self) -> str:
        return "    " * (self._loop_depth + 1)

    def _leaf(self, code: str, path: str, kind: str, check: Check, array: bool = False) -> None:
        indent = self._indent()
        self._capture_lines.append(f"{indent}_a({code})")
        # arrays are refilled in place: whatever holds the list object keeps seeing the variable
        self._restore_lines.append(f"{indent}{code}[:] = _n()" if array else f"{indent}{code} = _n()")
        self.checks.append(check)
        self.paths.append(path)
        self.descriptors.append(f"{path}: {kind}")

    def _scan_time(self, code: str, path: str) -> None:
        indent = self._indent()
        self._capture_lines.append(f"{indent}_t = {code}")
        self._capture_lines.append(f"{indent}_a(None if _t is None else _t - _now)")
        self._restore_lines.append(f"{indent}_t = _n()")
        self._restore_lines.append(f"{indent}{code} = None if _t is None else _now + _t")
        self.checks.append(_are_scan_times)
        self.paths.append(path)
        self.descriptors.append(f"{path}: {SCAN_TIME}")

    # ---- checking ------------------------------------------------------------------------------------------------

    def check_values(self, values: Any) -> None:
        """StateImageError unless `values` fits this layout exactly (count, and each value's type and range)."""
        if type(values) is not list or len(values) != len(self.checks):
            count = len(values) if isinstance(values, list) else type(values).__name__
            raise StateImageError("layout", f"state image holds {count} values, this program has {len(self.checks)}")
        if all(check(pick(values)) for pick, check in self._groups()):
            return
        for index, (check, value) in enumerate(zip(self.checks, values, strict=True)):
            if not check((value,)):
                shown = repr(value)[:60]
                raise StateImageError("value", f"state image value {index} ({self.paths[index]}) is invalid: {shown}")

    def _groups(self) -> list[tuple[Callable[[list[Any]], Sequence[Any]], Check]]:
        """The positions of the values of each check (one group per type), planned on first use."""
        if self._grouped is None:
            positions: dict[int, list[int]] = {}
            by_id: dict[int, Check] = {}
            for index, check in enumerate(self.checks):
                positions.setdefault(id(check), []).append(index)
                by_id[id(check)] = check
            self._grouped = [(_picker(indexes), by_id[key]) for key, indexes in positions.items()]
        return self._grouped


def _picker(indexes: list[int]) -> Callable[[list[Any]], Sequence[Any]]:
    if len(indexes) == 1:
        only = indexes[0]
        return lambda values: (values[only],)
    return operator.itemgetter(*indexes)


def layout_for(program: Program) -> StateLayout:
    """The program's StateLayout, planned on first use and kept with the Program (which is immutable)."""
    layout: StateLayout | None = program.__dict__.get("_state_layout")
    if layout is None:
        layout = program.__dict__["_state_layout"] = StateLayout(program)
    return layout


def capture(instance: Instance, now_ns: int) -> bytes:
    """The whole state of `instance` as an image; SCAN_TIME fields relative to `now_ns`."""
    program = instance.program
    layout = layout_for(program)
    values = layout.capture_values(instance._state, instance._globals, now_ns)
    payload = json.dumps([program.revision, layout.fingerprint, values], separators=(",", ":")).encode()
    return _HEADER.pack(_MAGIC, FORMAT_VERSION, len(payload), zlib.crc32(payload)) + payload


def decode(image: bytes, program: Program) -> list[Any]:
    """The checked values of an image made for `program`'s revision and layout; StateImageError otherwise."""
    if not isinstance(image, bytes | bytearray | memoryview):
        raise StateImageError("corrupt", f"a state image is bytes, not {type(image).__name__}")
    data = bytes(image)
    if len(data) < _HEADER.size:
        raise StateImageError(
            "truncated", f"state image truncated: {len(data)} bytes, the header alone is {_HEADER.size}"
        )
    magic, version, length, crc = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise StateImageError("corrupt", "not a state image (bad magic)")
    if version != FORMAT_VERSION:
        raise StateImageError("version", f"state image format {version}, this runtime reads {FORMAT_VERSION}")
    payload = data[_HEADER.size :]
    if len(payload) != length:
        kind = "truncated" if len(payload) < length else "corrupt"
        raise StateImageError(kind, f"state image {kind}: payload of {len(payload)} bytes, header says {length}")
    if zlib.crc32(payload) != crc:
        raise StateImageError("corrupt", "state image corrupt: checksum mismatch")
    try:
        decoded = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise StateImageError("corrupt", f"state image corrupt: {exc}") from None
    if type(decoded) is not list or len(decoded) != 3:
        raise StateImageError("corrupt", "state image corrupt: not [revision, layout, values]")
    revision, fingerprint, values = decoded
    if revision != program.revision:
        raise StateImageError(
            "revision", f"state image of revision {str(revision)[:40]!r}, running {program.revision!r}"
        )
    layout = layout_for(program)
    if fingerprint != layout.fingerprint:
        raise StateImageError(
            "layout", f"state image of layout {str(fingerprint)[:40]!r}, this one is {layout.fingerprint!r}"
        )
    layout.check_values(values)
    return values


def restore(instance: Instance, image: bytes, now_ns: int) -> None:
    """Overwrite the whole state of `instance` from `image`, SCAN_TIME fields rebased onto `now_ns`.

    Raises StateImageError (and leaves the instance untouched) for an image of another revision or layout, or a
    truncated or corrupt one: everything is checked before the first value is written.
    """
    values = decode(image, instance.program)
    layout_for(instance.program).restore_values(instance._state, instance._globals, now_ns, values)
