"""State images for hot standby: the whole state captured on one instance, restored on another, timers rebased."""

from __future__ import annotations

import json
import random
import struct
import zlib

import pytest

from shopfloor_st import Instance, Program, compile_source
from shopfloor_st.state_image import StateImageError, layout_for
from shopfloor_st.stdfb import SCAN_TIME, STANDARD_FBS

pytestmark = pytest.mark.timeout(60)

MS = 1_000_000
CYCLE = 10 * MS
OFFSET = 123_000 * MS  # the standby's clock is 123 s ahead of the primary's


def program(decls: str, body: str, prelude: str = "") -> Program:
    return compile_source(f"{prelude}\nPROGRAM Main\nVAR\n{decls}\nEND_VAR\n{body}\nEND_PROGRAM\n", "image.st")


def scans(instance: Instance, first: int, count: int, start_ns: int = 0) -> int:
    """Scan `count` cycles from cycle `first`; returns the next cycle's number."""
    for k in range(first, first + count):
        instance.scan(start_ns + k * CYCLE)
    return first + count


def handed_over(prog: Program, primary: Instance, cycle: int) -> Instance:
    """A fresh standby instance with the primary's state captured after `cycle - 1`, on a clock OFFSET ahead."""
    standby = prog.instantiate()
    standby.restore_state(primary.capture_state(cycle * CYCLE), cycle * CYCLE + OFFSET)
    return standby


def test_ton_continues_without_a_jump_and_rises_exactly_at_pt() -> None:
    prog = program("t : TON; run : BOOL := TRUE;", "t(IN := run, PT := T#100ms);")
    primary = prog.instantiate()
    nxt = scans(primary, 0, 4)  # IN rose at t=0: ET 30 ms after the fourth scan
    assert primary.get("t.ET") == 30
    standby = handed_over(prog, primary, nxt)
    assert standby.get("t.ET") == 30
    seen = []
    for k in range(nxt, 12):
        standby.scan(k * CYCLE + OFFSET)
        seen.append((standby.get("t.ET"), standby.get("t.Q")))
    assert [et for et, _ in seen] == [40, 50, 60, 70, 80, 90, 100, 100]
    assert [q for _, q in seen] == [False] * 6 + [True, True]  # Q at exactly PT = 100 ms, as the primary would


def test_tof_and_tp_mid_cycle_continue() -> None:
    prog = program(
        "off : TOF; pulse : TP; trigger : BOOL;",
        "off(IN := trigger, PT := T#50ms); pulse(IN := trigger, PT := T#50ms);",
    )
    primary = prog.instantiate()
    primary.set("trigger", True)
    nxt = scans(primary, 0, 2)
    primary.set("trigger", False)
    nxt = scans(primary, nxt, 2)  # TOF running since IN fell at 20 ms; TP pulse since 0 ms
    reference = prog.instantiate()
    reference.restore_state(primary.capture_state(nxt * CYCLE), nxt * CYCLE)  # same clock: the reference run
    standby = handed_over(prog, primary, nxt)
    for k in range(nxt, nxt + 8):
        reference.scan(k * CYCLE)
        standby.scan(k * CYCLE + OFFSET)
        assert standby.snapshot() == reference.snapshot()
    assert standby.get("off.Q") is False and standby.get("off.ET") == 50


def test_tof_falls_exactly_pt_after_in_fell_on_the_standby() -> None:
    prog = program("off : TOF; trigger : BOOL := TRUE;", "off(IN := trigger, PT := T#50ms);")
    primary = prog.instantiate()
    nxt = scans(primary, 0, 1)
    primary.set("trigger", False)
    nxt = scans(primary, nxt, 2)  # IN fell at 10 ms: ET 10 ms at 20 ms
    standby = handed_over(prog, primary, nxt)
    falls_at = next(k for k in range(nxt, 20) if not (standby.scan(k * CYCLE + OFFSET), standby.get("off.Q"))[1])
    assert falls_at * CYCLE == 10 * MS + 50 * MS


def test_ctu_continues_and_keeps_its_edge_memory() -> None:
    prog = program("c : CTU; pulse : BOOL;", "c(CU := pulse, PV := 100);")
    primary = prog.instantiate()
    for k in range(6):
        primary.set("pulse", k % 2 == 0)
        primary.scan(k * CYCLE)
    primary.set("pulse", True)
    primary.scan(6 * CYCLE)  # the fourth rising edge; CU stays held on the standby
    assert primary.get("c.CV") == 4
    standby = handed_over(prog, primary, 7)
    scans(standby, 7, 3, OFFSET)
    assert standby.get("c.CV") == 4  # a held input is no new edge: no double count
    standby.set("pulse", False)
    standby.scan(10 * CYCLE + OFFSET)
    standby.set("pulse", True)
    standby.scan(11 * CYCLE + OFFSET)
    assert standby.get("c.CV") == 5


def test_edge_triggers_keep_memory() -> None:
    prog = program(
        "r : R_TRIG; f : F_TRIG; clk : BOOL := TRUE; n : INT;",
        "r(CLK := clk); f(CLK := clk); IF r.Q THEN n := n + 1; END_IF;",
    )
    primary = prog.instantiate()
    scans(primary, 0, 1)
    standby = handed_over(prog, primary, 1)
    scans(standby, 1, 3, OFFSET)
    assert standby.get("n") == 1  # R_TRIG.M came along: the held CLK is no second edge


def test_arrays_of_fb_instances_structures_strings_and_user_fbs() -> None:
    prelude = """
TYPE Valve : STRUCT Open : BOOL; Pos : REAL; Tag : STRING(12); END_STRUCT; END_TYPE
TYPE Mode : (Idle, Fill, Drain); END_TYPE
FUNCTION_BLOCK Stage
VAR_INPUT go : BOOL; END_VAR
VAR_OUTPUT done : BOOL; END_VAR
VAR steps : INT; delay : TON; history : ARRAY[1..3] OF INT; END_VAR
steps := steps + 1;
history[(steps MOD 3) + 1] := steps;
delay(IN := go, PT := T#70ms);
done := delay.Q;
END_FUNCTION_BLOCK
"""
    decls = """
  timers : ARRAY[1..3] OF TON; counters : ARRAY[0..1, 0..1] OF CTU; valves : ARRAY[1..2] OF Valve;
  grid : ARRAY[1..2, 1..3] OF INT; stage : Stage; stages : ARRAY[1..2] OF Stage; mode : Mode;
  label : STRING(20); ratio : LREAL; flags : WORD; i : INT;
"""
    body = """
FOR i := 1 TO 3 DO timers[i](IN := TRUE, PT := INT_TO_TIME(i * 40)); END_FOR;
counters[1, 0](CU := NOT counters[1, 0].CU);
valves[2].Pos := valves[2].Pos + 0.5; valves[2].Tag := 'V2'; valves[1].Open := TRUE;
grid[2, 3] := grid[2, 3] + 7;
stage(go := TRUE); stages[2](go := TRUE);
mode := Fill; label := CONCAT(label, 'x'); ratio := ratio + 0.25; flags := flags OR 16#0101;
"""
    prog = program(decls, body, prelude)
    primary = prog.instantiate()
    nxt = scans(primary, 0, 5)
    standby = handed_over(prog, primary, nxt)
    assert standby.snapshot() == primary.snapshot()
    reference = prog.instantiate()
    reference.restore_state(primary.capture_state(nxt * CYCLE), nxt * CYCLE)
    for k in range(nxt, nxt + 6):
        standby.scan(k * CYCLE + OFFSET)
        reference.scan(k * CYCLE)
    assert standby.snapshot() == reference.snapshot()
    snap = standby.snapshot()
    assert snap["stage"]["steps"] == 11 and snap["stage"]["done"] is True  # scans at 0..100 ms: PT 70 ms passed
    assert snap["stage"]["delay"]["ET"] == 70 and snap["stage"]["history"] == [9, 10, 11]
    assert [t["Q"] for t in snap["timers"]] == [True, True, False]
    assert snap["counters"][1][0]["CV"] == 6
    assert snap["label"] == "x" * 11 and snap["mode"] == "Fill" and snap["grid"][1][2] == 77


def test_globals_travel_and_the_abort_flag_does_not() -> None:
    prelude = "VAR_GLOBAL total : DINT; names : ARRAY[1..2] OF STRING(8); END_VAR"
    prog = program("n : INT;", "total := total + 2; names[1] := 'abc'; n := n + 1;", prelude)
    primary = prog.instantiate()
    scans(primary, 0, 3)
    primary.abort()
    standby = handed_over(prog, primary, 3)
    assert standby.get("total") == 6 and standby.get("names") == ["abc", ""]
    assert standby._globals._abort is False


def test_an_image_of_another_revision_is_refused_and_the_instance_is_unchanged() -> None:
    prog = program("n : INT;", "n := n + 1;")
    other = program("n : INT;", "n := n + 2;")
    primary = other.instantiate()
    scans(primary, 0, 3)
    standby = prog.instantiate()
    scans(standby, 0, 1)
    before = standby.capture_state(0)
    with pytest.raises(StateImageError, match="revision") as info:
        standby.restore_state(primary.capture_state(0), 0)
    assert info.value.reason == "revision"
    assert standby.capture_state(0) == before


def test_truncated_and_corrupt_images_are_refused_with_a_clear_message() -> None:
    prog = program("n : INT; t : TON;", "n := n + 1; t(IN := TRUE, PT := T#1s);")
    primary = prog.instantiate()
    scans(primary, 0, 3)
    image = primary.capture_state(30 * MS)
    standby = prog.instantiate()
    before = standby.capture_state(0)
    cases = {
        image[:5]: "truncated",
        image[:-3]: "truncated",
        image + b"x": "corrupt",
        b"XXXX" + image[4:]: "bad magic",
        image[:20] + bytes([image[20] ^ 0xFF]) + image[21:]: "checksum",
        image[:4] + struct.pack("<H", 99) + image[6:]: "format 99",
    }
    for bad, expected in cases.items():
        with pytest.raises(StateImageError, match=expected):
            standby.restore_state(bad, 0)
    assert standby.capture_state(0) == before


def _forged(image: bytes, edit: object) -> bytes:
    """The image with its payload replaced (and the checksum fixed), as a buggy or hostile sender could send."""
    payload = json.dumps(edit).encode()
    return image[:4] + struct.pack("<HII", 1, len(payload), zlib.crc32(payload)) + payload


def test_values_that_do_not_fit_are_refused_before_anything_is_written() -> None:
    prog = program("n : INT; b : BOOL; s : STRING(3); arr : ARRAY[1..2] OF INT; t : TON;", "n := n + 1;")
    primary = prog.instantiate()
    image = primary.capture_state(0)
    revision, layout, values = json.loads(image[14:])
    standby = prog.instantiate()
    scans(standby, 0, 2)
    before = standby.capture_state(0)
    bad_values = [
        ([99999, *values[1:]], "n"),  # out of the INT range
        ([values[0], 1.5, *values[2:]], "b"),
        ([values[0], values[1], "toolong", *values[3:]], "s"),
        ([*values[:3], [1, 2, 3], *values[4:]], "arr"),
        ([*values[:-1], "later"], "t._start"),
        (values[:-1], "holds"),
    ]
    for edited, expected in bad_values:
        with pytest.raises(StateImageError, match=expected):
            standby.restore_state(_forged(image, [revision, layout, edited]), 0)
    with pytest.raises(StateImageError, match="layout"):
        standby.restore_state(_forged(image, [revision, "0123", values]), 0)
    assert standby.capture_state(0) == before


def test_random_bytes_never_raise_anything_but_state_image_error() -> None:
    prog = program("n : INT; t : TON; arr : ARRAY[1..4] OF REAL;", "n := n + 1; t(IN := TRUE, PT := T#1s);")
    primary = prog.instantiate()
    scans(primary, 0, 2)
    image = primary.capture_state(20 * MS)
    standby = prog.instantiate()
    before = standby.capture_state(0)
    rng = random.Random(5)
    for _ in range(3000):
        choice = rng.random()
        if choice < 0.3:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        elif choice < 0.7:
            data = bytearray(image)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:  # a payload mutated behind a valid checksum: only the value checks stand in the way
            payload = bytearray(image[14:])
            payload[rng.randrange(len(payload))] = rng.choice(b'[]{}",:0123456789.-etrufnl ')
            data = image[:6] + struct.pack("<II", len(payload), zlib.crc32(payload)) + bytes(payload)
        try:
            standby.restore_state(data, 0)
        except StateImageError:
            assert standby.capture_state(0) == before
        else:  # a mutation that still fits the layout is a valid image: it must then have been applied whole
            before = standby.capture_state(0)


def test_every_standard_fb_describes_its_state() -> None:
    for name, cls in STANDARD_FBS.items():
        hidden = {field for field, _ in cls.HIDDEN_STATE}
        members = {f"v_{member}" for member, _, _ in cls.MEMBERS}
        assert set(cls.__slots__) - {"_g"} == members | hidden, name
    assert {n for n, c in STANDARD_FBS.items() if any(t == SCAN_TIME for _, t in c.HIDDEN_STATE)} == {
        "TON",
        "TOF",
        "TP",
    }


def test_the_walk_is_planned_once_per_program() -> None:
    prog = program("n : INT;", "n := n + 1;")
    assert layout_for(prog) is layout_for(prog)
    assert len(prog.instantiate().capture_state(0)) < 200
