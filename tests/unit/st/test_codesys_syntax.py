"""CODESYS spellings accepted besides the IEC ones (CODESYS online help, cited per test)."""

from shopfloor_st import compile_source


def test_string_length_on_a_function_result(run) -> None:
    prelude = """
FUNCTION Five : STRING[5]
VAR_INPUT a : STRING; END_VAR
Five := CONCAT(a, 'defgh');
END_FUNCTION
FUNCTION Three : STRING ( 3 )
VAR_INPUT a : STRING; END_VAR
Three := 'abcdef';
END_FUNCTION
"""
    snap = run("s : STRING(20); n : INT;", "s := Five('abc'); n := LEN(Three('x'));", prelude=prelude)
    assert snap == {"s": "abcde", "n": 3}


def test_string_result_of_a_function_without_inputs() -> None:
    source = (
        "FUNCTION F : STRING(12)\nF := 'abcdefghijklmnop';\nEND_FUNCTION\n"
        "PROGRAM Main\nVAR s : STRING; END_VAR\ns := F();\nEND_PROGRAM"
    )
    instance = compile_source(source, "f.st").instantiate()
    instance.scan(0)
    assert instance.get("s") == "abcdefghijkl"


def test_end_struct_followed_by_end_type(run) -> None:
    # CODESYS help, "Data Structure: STRUCT": TYPE <name> : STRUCT ... END_STRUCT END_TYPE
    prelude = (
        "TYPE Valve :\nSTRUCT\n  open : BOOL;\n  pos : REAL;\nEND_STRUCT\nEND_TYPE\n"
        "TYPE Pair : STRUCT a : INT; END_STRUCT END_TYPE"
    )
    snap = run("v : Valve; p : Pair;", "v.pos := 1.5; p.a := 2;", prelude=prelude)
    assert snap["v"] == {"open": False, "pos": 1.5} and snap["p"] == {"a": 2}


def test_enumeration_with_a_base_type(run) -> None:
    # IEC 61131-3 ed. 3 puts the base type before the values, CODESYS ("Enumeration") after them
    prelude = "TYPE E : BYTE (a := 1, b := 2); END_TYPE\nTYPE F : (x := 16#10, y := 16#20) WORD; END_TYPE"
    snap = run("ev : E; fv : F; i : INT; j : INT;", "ev := E#b; i := TO_INT(ev); j := TO_INT(fv);", prelude=prelude)
    assert (snap["ev"], snap["fv"], snap["i"], snap["j"]) == ("b", "x", 2, 0x10)


def test_subrange_is_not_taken_for_an_enumeration(run) -> None:
    snap = run("p : Pct;", "p := 40;", prelude="TYPE Pct : INT (0..100); END_TYPE")
    assert snap["p"] == 40


def test_underscores_in_durations(run) -> None:
    snap = run("t : TIME := T#1_000ms; u : TIME;", "u := T#1_500ms + TIME#1_0s + t#1h_30m;")
    assert snap["t"] == 1000 and snap["u"] == 1500 + 10_000 + 5_400_000


def test_counter_inputs_reset_and_load(run) -> None:
    # CODESYS Standard library: CTU(CU, RESET, PV), CTD(CD, LOAD, PV), CTUD(CU, CD, RESET, LOAD, PV)
    decls = "c : CTU; d : CTD; e : CTUD; r : BOOL; tog : BOOL;"
    body = (
        "tog := NOT tog; c(CU := tog, RESET := r, PV := 5); d(CD := FALSE, LOAD := TRUE, PV := 3);"
        " e(CU := FALSE, CD := FALSE, RESET := FALSE, LOAD := TRUE, PV := 2); c.RESET := c.RESET;"
    )
    snap = run(decls, body, scans=4)
    assert snap["c"]["CV"] == 2  # a rising edge every second scan
    assert snap["d"]["CV"] == 3 and snap["e"]["CV"] == 2
    snap = run("c : CTU;", "c(CU := TRUE, PV := 5); c(CU := FALSE, RESET := TRUE);")
    assert snap["c"]["CV"] == 0


def test_bistable_inputs_set1_reset_and_set_reset1(run) -> None:
    # CODESYS Standard library: SR(SET1, RESET) is set-dominant, RS(SET, RESET1) reset-dominant; IEC: S1/R, S/R1
    decls = "sr : SR; rs : RS; both : SR; pos : RS; q : BOOL;"
    body = (
        "sr(SET1 := TRUE, RESET := TRUE); rs(SET := TRUE, RESET1 := TRUE); both.SET1 := TRUE; both(R := FALSE);"
        " pos(TRUE, FALSE); q := both.Q1 AND pos.Q1;"
    )
    snap = run(decls, body)
    assert snap["sr"]["Q1"] is True and snap["rs"]["Q1"] is False
    assert snap["q"] is True


def test_the_timer_edge_and_counter_interfaces_are_codesys_standards(run) -> None:
    # CODESYS Standard library: TON/TOF/TP(IN, PT; Q, ET), R_TRIG/F_TRIG(CLK; Q), named as in IEC 61131-3
    decls = "ton : TON; tof : TOF; tp : TP; r : R_TRIG; f : F_TRIG; e1 : TIME; e2 : TIME; e3 : TIME; q : BOOL;"
    body = (
        "ton(IN := TRUE, PT := T#20ms, Q => q, ET => e1); tof(IN := FALSE, PT := T#20ms, ET => e2);"
        " tp(IN := TRUE, PT := T#20ms, ET => e3); r(CLK := TRUE); f(CLK := FALSE);"
    )
    snap = run(decls, body, scans=2)
    assert (snap["e1"], snap["e2"], snap["e3"], snap["q"]) == (10, 0, 10, False)
    assert snap["r"]["Q"] is False and snap["f"]["Q"] is False


def test_f_trig_sees_no_edge_in_a_first_call_with_clk_false(run) -> None:
    # CODESYS help, "SF_F_TRIG": CODESYS's Standard F_TRIG (IEC 61131-3 ed. 1) sees no falling edge when CLK is
    # FALSE in the first cycle; ed. 2's F_TRIG (and SF_F_TRIG) does
    snap = run("f : F_TRIG; q : BOOL;", "f(CLK := FALSE); q := f.Q;")
    assert snap["q"] is False
