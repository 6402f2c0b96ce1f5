def test_if_elsif_else(run) -> None:
    body = """
    IF x < 0 THEN r := -1;
    ELSIF x = 0 THEN r := 0;
    ELSIF x < 10 THEN r := 1;
    ELSE r := 2;
    END_IF;
    """
    for x, expected in [(-5, -1), (0, 0), (5, 1), (50, 2)]:
        assert run(f"x : INT := {x}; r : INT;", body)["r"] == expected


def test_case_with_lists_ranges_and_else(run) -> None:
    body = """
    CASE x OF
      1, 2: r := 10;
      3..5, 7: r := 20;
      -3..-1: r := 30;
    ELSE
      r := 99;
    END_CASE;
    """
    for x, expected in [(1, 10), (2, 10), (3, 20), (5, 20), (7, 20), (6, 99), (-2, 30), (0, 99)]:
        assert run(f"x : INT := {x}; r : INT;", body)["r"] == expected


def test_case_on_enumeration(run) -> None:
    prelude = "TYPE Mode : (Idle, Run, Fault := 10); END_TYPE"
    body = "CASE m OF Idle: r := 1; Mode#Run: r := 2; Mode.Fault: r := 3; END_CASE;"
    assert run("m : Mode := Mode#Fault; r : INT;", body, prelude=prelude)["r"] == 3
    assert run("m : Mode := Run; r : INT;", body, prelude=prelude)["r"] == 2


def test_for_up_down_and_by(run) -> None:
    body = """
    FOR i := 1 TO 10 DO up := up + i; END_FOR;
    FOR i := 10 TO 1 BY -2 DO down := down * 10 + i; END_FOR;
    FOR i := 0 TO 10 BY 5 DO n := n + 1; END_FOR;
    FOR i := 5 TO 1 DO never := 1; END_FOR;
    """
    snap = run("i : INT; up : INT; down : DINT; n : INT; never : INT;", body)
    assert snap["up"] == 55
    assert snap["down"] == 108642
    assert snap["n"] == 3
    assert snap["never"] == 0
    assert snap["i"] == 5  # the last loop assigned 5 and never ran


def test_for_with_variable_step_and_bounds(run) -> None:
    body = "FOR i := a TO b BY s DO n := n + 1; END_FOR;"
    assert run("i : INT; a : INT := 10; b : INT := 0; s : INT := -3; n : INT;", body)["n"] == 4


def test_while_and_repeat(run) -> None:
    body = """
    WHILE w < 100 DO w := w * 2 + 1; END_WHILE;
    REPEAT r := r + 1; UNTIL r >= 5 END_REPEAT;
    REPEAT once := once + 1; UNTIL TRUE END_REPEAT;
    """
    snap = run("w : INT; r : INT; once : INT;", body)
    assert snap == {"w": 127, "r": 5, "once": 1}


def test_exit_leaves_innermost_loop(run) -> None:
    body = """
    FOR i := 1 TO 5 DO
      FOR j := 1 TO 5 DO
        IF j > i THEN EXIT; END_IF;
        n := n + 1;
      END_FOR;
    END_FOR;
    WHILE TRUE DO k := k + 1; IF k = 3 THEN EXIT; END_IF; END_WHILE;
    """
    snap = run("i : INT; j : INT; n : INT; k : INT;", body)
    assert snap["n"] == 15 and snap["k"] == 3


def test_continue_in_for_still_steps(run) -> None:
    body = "FOR i := 1 TO 10 DO IF i MOD 2 = 0 THEN CONTINUE; END_IF; odd := odd + i; END_FOR;"
    assert run("i : INT; odd : INT;", body)["odd"] == 25


def test_return_ends_the_scan_early(run) -> None:
    body = "a := 1; IF a = 1 THEN RETURN; END_IF; a := 2;"
    assert run("a : INT;", body)["a"] == 1


def test_condition_must_be_bool(errors) -> None:
    source = "PROGRAM Main\nVAR x : INT; END_VAR\nIF x THEN x := 1; END_IF;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:4: IF condition must be BOOL, not INT"]


def test_exit_outside_loop_is_an_error(errors) -> None:
    source = "PROGRAM Main\nVAR x : INT; END_VAR\nEXIT;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:1: EXIT outside a loop"]
