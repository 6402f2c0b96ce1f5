from shopfloor_st import compile_source


def test_globals_shared_by_program_function_and_fb() -> None:
    source = """
VAR_GLOBAL Limit : INT := 5; Hits : INT; END_VAR
VAR_GLOBAL RETAIN Saved : DINT; END_VAR
FUNCTION Over : BOOL
VAR_INPUT x : INT; END_VAR
Over := x > Limit;
END_FUNCTION
FUNCTION_BLOCK Hitter
VAR_EXTERNAL Hits : INT; END_VAR
Hits := Hits + 1;
END_FUNCTION_BLOCK
PROGRAM Main
VAR h : Hitter; n : INT; big : BOOL; END_VAR
n := n + 1;
big := Over(n);
h();
Saved := Saved + 10;
END_PROGRAM
"""
    program = compile_source(source)
    assert program.globals["Saved"].retain and program.globals["Limit"].section == "VAR_GLOBAL"
    instance = program.instantiate()
    for k in range(6):
        instance.scan(k)
    assert instance.get("big") is True and instance.get("Hits") == 6 and instance.get("Saved") == 60
    assert "Hits" not in instance.snapshot()  # the snapshot is the entry program's variables


def test_configuration_block_declares_globals() -> None:
    source = """
PROGRAM Main
VAR x : INT; END_VAR
x := G + 1;
END_PROGRAM
CONFIGURATION Plant
  VAR_GLOBAL G : INT := 41; END_VAR
  RESOURCE Cpu ON PLC
    TASK Cyclic(INTERVAL := T#10ms, PRIORITY := 1);
    PROGRAM Inst WITH Cyclic : Main;
  END_RESOURCE
END_CONFIGURATION
"""
    instance = compile_source(source).instantiate()
    instance.scan(0)
    assert instance.get("x") == 42


def test_instances_are_independent() -> None:
    program = compile_source(
        "VAR_GLOBAL g : INT; END_VAR\nPROGRAM Main\nVAR x : INT; END_VAR\nx := x + 1; g := g + 1;\nEND_PROGRAM"
    )
    a, b = program.instantiate(), program.instantiate()
    a.scan(0)
    a.scan(1)
    b.scan(0)
    assert (a.get("x"), a.get("g"), b.get("x"), b.get("g")) == (2, 2, 1, 1)
