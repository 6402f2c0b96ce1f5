def test_array_with_any_bounds(run) -> None:
    body = "FOR i := -2 TO 2 DO a[i] := i * 10; END_FOR; s := a[-2] + a[2];"
    snap = run("a : ARRAY[-2..2] OF INT; i : INT; s : INT;", body)
    assert snap["a"] == [-20, -10, 0, 10, 20] and snap["s"] == 0


def test_array_initialisers_with_repetition(run) -> None:
    snap = run("a : ARRAY[1..6] OF INT := [1, 2(7), 2]; b : ARRAY[0..4] OF BOOL := [2(TRUE)];", "")
    assert snap["a"] == [1, 7, 7, 2, 0, 0]
    assert snap["b"] == [True, True, False, False, False]


def test_multi_dimensional_arrays(run) -> None:
    decls = "m : ARRAY[1..2, 0..2] OF INT := [1, 2, 3, 4, 5, 6]; i : INT; j : INT; s : INT; x : INT;"
    body = "FOR i := 1 TO 2 DO FOR j := 0 TO 2 DO s := s + m[i, j]; END_FOR; END_FOR; m[2, 1] := 50; x := m[1, 2];"
    snap = run(decls, body)
    assert snap["m"] == [[1, 2, 3], [4, 50, 6]]
    assert snap["s"] == 21 and snap["x"] == 3


def test_array_of_arrays(run) -> None:
    snap = run("m : ARRAY[0..1] OF ARRAY[0..1] OF INT;", "m[1][0] := 5; m[0, 1] := 6;")
    assert snap["m"] == [[0, 6], [5, 0]]


def test_array_of_structures(run) -> None:
    prelude = "TYPE Point : STRUCT x : INT; y : INT := 1; END_STRUCT; END_TYPE"
    decls = "pts : ARRAY[1..3] OF Point := [(x := 5), (x := 6, y := 7)]; s : INT; i : INT;"
    body = "pts[3].x := 9; FOR i := 1 TO 3 DO s := s + pts[i].x + pts[i].y; END_FOR;"
    snap = run(decls, body, prelude=prelude)
    assert snap["pts"] == [{"x": 5, "y": 1}, {"x": 6, "y": 7}, {"x": 9, "y": 1}]
    assert snap["s"] == 5 + 1 + 6 + 7 + 9 + 1


def test_array_assignment_copies(run) -> None:
    body = "b := a; b[1] := 99;"
    snap = run("a : ARRAY[1..2] OF INT := [1, 2]; b : ARRAY[1..2] OF INT;", body)
    assert snap["a"] == [1, 2] and snap["b"] == [99, 2]


def test_constant_array_bounds(run) -> None:
    prelude = "VAR_GLOBAL CONSTANT N : INT := 3; END_VAR"
    snap = run("a : ARRAY[1..N] OF INT; b : ARRAY[0..N - 1] OF INT;", "a[N] := 1;", prelude=prelude)
    assert snap["a"] == [0, 0, 1] and snap["b"] == [0, 0, 0]


def test_constant_index_out_of_range_is_a_compile_error(errors) -> None:
    source = "PROGRAM Main\nVAR a : ARRAY[1..3] OF INT; END_VAR\na[4] := 1;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:3: array index 4 out of range 1..3"]


def test_too_many_initial_values(errors) -> None:
    source = "PROGRAM Main\nVAR a : ARRAY[1..2] OF INT := [1, 2, 3]; END_VAR\nEND_PROGRAM"
    assert errors(source) == ["bad.st:2:31: 3 initial values for 2 elements of 'a'"]


def test_index_must_be_integer(errors) -> None:
    source = "PROGRAM Main\nVAR a : ARRAY[1..2] OF INT; r : REAL; END_VAR\na[r] := 1;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:3: array index must be an integer, not REAL"]


def test_nested_initialisers_for_arrays_of_arrays(run) -> None:
    # CODESYS help, "Compiler Error C0232": an array of arrays is initialised with one nested [...] per element
    decls = (
        "a : ARRAY[0..1] OF ARRAY[0..2] OF INT := [[1, 2, 3], [4, 5, 6]];"
        " m : ARRAY[1..2, 1..2] OF INT := [[1, 2], [3]];"
        " c : ARRAY[0..1] OF ARRAY[0..1] OF ARRAY[0..1] OF INT := [[[1, 2], [3, 4]], [[5, 6]]];"
        " r : ARRAY[0..2] OF ARRAY[0..1] OF BOOL := [2([TRUE, FALSE])];"
    )
    snap = run(decls, "")
    assert snap["a"] == [[1, 2, 3], [4, 5, 6]]
    assert snap["m"] == [[1, 2], [3, 0]]  # elements left out take their default
    assert snap["c"] == [[[1, 2], [3, 4]], [[5, 6], [0, 0]]]
    assert snap["r"] == [[True, False], [True, False], [False, False]]


def test_nested_initialiser_with_too_many_elements(errors) -> None:
    source = "PROGRAM Main\nVAR a : ARRAY[0..1] OF ARRAY[0..1] OF INT := [[1], [2], [3]]; END_VAR\nEND_PROGRAM"
    assert errors(source) == ["bad.st:2:46: 3 initial values for 2 elements of 'a'"]
