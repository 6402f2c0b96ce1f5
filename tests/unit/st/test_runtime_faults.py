import pytest

from shopfloor_st import RuntimeFault, compile_source
from tests.support.waiting import wait_for


def fault_of(body: str, decls: str = "", prelude: str = "") -> RuntimeFault:
    source = f"{prelude}PROGRAM Main\nVAR\n{decls}\nEND_VAR\n{body}\nEND_PROGRAM\n"
    instance = compile_source(source, "f.st").instantiate()
    with pytest.raises(RuntimeFault) as info:
        instance.scan(0)
    return info.value


def test_integer_division_by_zero() -> None:
    fault = fault_of("x := 1;\nx := 10 / z;", "x : INT; z : INT;")
    assert (fault.message, fault.line, fault.col) == ("division by zero", 6, 6)


def test_mod_by_zero() -> None:
    fault = fault_of("x := 10 MOD z;", "x : INT; z : INT;")
    assert (fault.message, fault.line) == ("division by zero (MOD 0)", 5)


def test_real_division_by_zero() -> None:
    fault = fault_of("r := 1.0 / z;", "r : REAL; z : REAL;")
    assert (fault.message, fault.line, fault.col) == ("division by zero", 5, 6)


def test_array_index_out_of_range_names_line_and_index() -> None:
    fault = fault_of("i := 4;\n  a[i] := 1;", "a : ARRAY[1..3] OF INT; i : INT;")
    assert (fault.message, fault.line, fault.col) == ("array index 4 out of range 1..3", 6, 5)


def test_index_fault_inside_a_function_names_the_function_line() -> None:
    prelude = "FUNCTION Get : INT\nVAR_INPUT i : INT; END_VAR\nVAR a : ARRAY[0..1] OF INT; END_VAR\n"
    prelude += "Get := a[i];\nEND_FUNCTION\n"
    fault = fault_of("x := Get(2);", "x : INT;", prelude)
    assert (fault.message, fault.line, fault.col) == ("array index 2 out of range 0..1", 4, 10)


def test_mux_out_of_range() -> None:
    fault = fault_of("x := MUX(k, 1, 2);", "x : INT; k : INT := 2;")
    assert fault.message == "MUX selector 2 out of range 0..1" and fault.line == 5


def test_endless_recursion_is_a_fault_with_a_line() -> None:
    prelude = "FUNCTION R : INT\nVAR_INPUT n : INT; END_VAR\nR := R(n + 1);\nEND_FUNCTION\n"
    fault = fault_of("x := R(0);", "x : INT;", prelude)
    assert fault.message == "recursion too deep" and fault.line in (3, 9)


def test_state_before_the_fault_is_kept() -> None:
    source = "PROGRAM Main\nVAR n : INT; z : INT; END_VAR\nn := n + 1;\nn := n / z;\nEND_PROGRAM"
    instance = compile_source(source).instantiate()
    with pytest.raises(RuntimeFault):
        instance.scan(0)
    assert instance.get("n") == 1


def test_abort_stops_an_endless_loop_from_another_thread() -> None:
    import threading

    source = "PROGRAM Main\nVAR n : DINT; END_VAR\nWHILE TRUE DO\n  n := n + 1;\nEND_WHILE;\nEND_PROGRAM"
    instance = compile_source(source, "loop.st").instantiate()
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            instance.scan(0)
        except RuntimeFault as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: instance.get("n") != 0, timeout=10, interval=0.001, what="the loop running")
    instance.abort()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(outcome) == 1 and outcome[0].message == "scan aborted (watchdog)" and outcome[0].line == 3
    with pytest.raises(RuntimeFault):  # sticky until resume()
        instance.scan(1)
    instance.resume()
    instance.set("n", 0)
    assert instance.get("n") == 0
