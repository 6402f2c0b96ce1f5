MS = 1_000_000

FB = """
FUNCTION_BLOCK Accumulator
VAR_INPUT step : INT := 1; reset : BOOL; END_VAR
VAR_OUTPUT total : DINT; calls : INT; END_VAR
VAR internal : INT; END_VAR
IF reset THEN total := 0; ELSE total := total + step; END_IF;
calls := calls + 1;
internal := internal + 2;
END_FUNCTION_BLOCK

FUNCTION_BLOCK Scaler
VAR_IN_OUT value : REAL; END_VAR
VAR_INPUT factor : REAL := 2.0; END_VAR
value := value * factor;
END_FUNCTION_BLOCK
"""


def test_instances_keep_state_between_calls_and_scans(run) -> None:
    body = "acc(step := 5); acc(); other(step := 1, total => t);"
    snap = run("acc : Accumulator; other : Accumulator; t : DINT;", body, scans=3, prelude=FB)
    assert snap["acc"]["total"] == 5 * 3 + 5 * 3  # the second call keeps step = 5
    assert snap["acc"]["calls"] == 6
    assert snap["t"] == 3


def test_positional_fb_call_and_output_access(run) -> None:
    snap = run("acc : Accumulator; t : DINT;", "acc(3, FALSE); t := acc.total;", scans=2, prelude=FB)
    assert snap["t"] == 6


def test_input_assignment_before_call(run) -> None:
    snap = run("acc : Accumulator;", "acc.step := 4; acc();", prelude=FB)
    assert snap["acc"]["total"] == 4


def test_in_out_on_fb(run) -> None:
    snap = run("s : Scaler; v : REAL := 1.5;", "s(value := v); s(value := v, factor := 3.0);", prelude=FB)
    assert snap["v"] == 9.0


def test_array_of_fb_instances(run) -> None:
    snap = run(
        "accs : ARRAY[1..2] OF Accumulator; i : INT;", "FOR i := 1 TO 2 DO accs[i](step := i); END_FOR;", prelude=FB
    )
    assert [a["total"] for a in snap["accs"]] == [1, 2]


def test_internal_variables_are_hidden(errors) -> None:
    source = FB + "PROGRAM Main\nVAR a : Accumulator; x : INT; END_VAR\nx := a.internal;\nEND_PROGRAM"
    line = FB.count("\n") + 3
    assert errors(source) == [
        f"bad.st:{line}:6: 'internal' is internal to Accumulator; only inputs and outputs are visible"
    ]


def test_outputs_cannot_be_assigned_from_outside(errors) -> None:
    source = FB + "PROGRAM Main\nVAR a : Accumulator; END_VAR\na.total := 1;\nEND_PROGRAM"
    line = FB.count("\n") + 3
    assert errors(source) == [f"bad.st:{line}:1: cannot assign to output 'total' of a function block instance"]


def test_fb_call_in_expression_is_an_error(errors) -> None:
    source = FB + "PROGRAM Main\nVAR a : Accumulator; x : DINT; END_VAR\nx := a();\nEND_PROGRAM"
    line = FB.count("\n") + 3
    assert errors(source) == [f"bad.st:{line}:6: function block instance 'a' must be called as a statement"]


def test_ton_on_virtual_time(run) -> None:
    # scan k runs at k * 10 ms; IN is TRUE from the first scan, so Q rises at t = 30 ms (the fourth scan)
    decls = "t : TON; q : BOOL; et : TIME;"
    body = "t(IN := TRUE, PT := T#30ms, Q => q, ET => et);"
    assert run(decls, body, scans=3) | {} == {"t": {"IN": True, "PT": 30, "Q": False, "ET": 20}, "q": False, "et": 20}
    snap = run(decls, body, scans=4)
    assert snap["q"] is True and snap["et"] == 30


def test_ton_resets_when_in_falls(run) -> None:
    body = "n := n + 1; t(IN := n < 5, PT := T#20ms); q := t.Q; e := t.ET;"
    snap = run("t : TON; n : INT; q : BOOL; e : TIME;", body, scans=6)
    assert snap["q"] is False and snap["e"] == 0


def test_tof_holds_after_falling_edge(run) -> None:
    body = "n := n + 1; t(IN := n <= 2, PT := T#30ms); IF n = 5 THEN q5 := t.Q; END_IF; q := t.Q;"
    decls = "t : TOF; n : INT; q : BOOL; q5 : BOOL;"
    # IN falls at the third scan (t = 20 ms); Q stays TRUE until 50 ms (the sixth scan)
    assert run(decls, body, scans=5)["q5"] is True
    assert run(decls, body, scans=5)["q"] is True
    assert run(decls, body, scans=6)["q"] is False


def test_tp_pulse_has_fixed_length(run) -> None:
    body = "n := n + 1; p(IN := n = 1 OR n >= 6, PT := T#25ms); IF p.Q THEN high := high + 1; END_IF;"
    # rises at t = 0: Q at 0, 10, 20 ms; rises again at 50 ms: Q at 50, 60, 70 ms although IN stays TRUE
    snap = run("p : TP; n : INT; high : INT;", body, scans=10)
    assert snap["high"] == 6
    assert snap["p"]["ET"] == 25  # ET holds PT while IN stays TRUE after the pulse


def test_ctu_ctd_ctud(run) -> None:
    body = """
    n := n + 1;
    up(CU := n MOD 2 = 0, PV := 3);
    down(CD := n MOD 2 = 0, LD := n = 1, PV := 5);
    ud(CU := n MOD 2 = 0, CD := n MOD 3 = 0, PV := 2);
    """
    snap = run("up : CTU; down : CTD; ud : CTUD; n : INT;", body, scans=10)
    assert snap["up"]["CV"] == 5 and snap["up"]["Q"] is True
    assert snap["down"]["CV"] == 0 and snap["down"]["Q"] is True
    # CU rising edges at n = 2, 4, 6, 8, 10; CD rising edges at n = 3, 6, 9 (n = 6 both: no change)
    assert snap["ud"]["CV"] == 5 - 3 + 1 - 1 + 0 and snap["ud"]["QU"] is True


def test_ctu_reset(run) -> None:
    snap = run("c : CTU; n : INT;", "n := n + 1; c(CU := TRUE, R := n = 3, PV := 1);", scans=3)
    assert snap["c"]["CV"] == 0 and snap["c"]["Q"] is False


def test_edge_triggers(run) -> None:
    body = """
    n := n + 1;
    clk := n = 2 OR n = 3;
    r(CLK := clk); f(CLK := clk);
    IF r.Q THEN rises := rises + 1; END_IF;
    IF f.Q THEN falls := falls + 1; END_IF;
    """
    snap = run("r : R_TRIG; f : F_TRIG; n : INT; clk : BOOL; rises : INT; falls : INT;", body, scans=6)
    assert snap["rises"] == 1 and snap["falls"] == 1


def test_bistables(run) -> None:
    body = "sr(S1 := TRUE, R := TRUE); rs(S := TRUE, R1 := TRUE); sr2(S1 := n = 0, R := FALSE); n := n + 1;"
    snap = run("sr : SR; rs : RS; sr2 : SR; n : INT;", body, scans=3)
    assert snap["sr"]["Q1"] is True  # set dominates
    assert snap["rs"]["Q1"] is False  # reset dominates
    assert snap["sr2"]["Q1"] is True  # latched


def test_standard_fb_positional_call(run) -> None:
    snap = run("t : TON;", "t(TRUE, T#10ms);", scans=2)
    assert snap["t"]["Q"] is True


def test_fb_initialiser(run) -> None:
    snap = run("t : TON := (PT := T#1s);", "")
    assert snap["t"]["PT"] == 1000
