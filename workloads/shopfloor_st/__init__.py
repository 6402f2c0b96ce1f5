"""IEC 61131-3 Structured Text compiler: parse, check and compile ST programs to Python (pure, no I/O).

    program = compile_source(text, "main.st")      # raises CompileError with every diagnostic
    inst = program.instantiate()
    inst.scan(now_ns)                               # raises RuntimeFault(message, line, col)
    inst.get("Tank.Level"); inst.set("Start", True); inst.snapshot()
    where = inst.path("Tank.Level"); inst.read(where); inst.write(where, 2.5)   # resolved once, for each scan
    inst.retained_values(); inst.load_retained(checkpoint)                        # RETAIN checkpoints
    new_inst = new_program.migrate_from(inst, program)   # online change; raises IncompatibleChange

See docs/st-language.md for the language subset and its semantics.
"""

from shopfloor_st.errors import CompileError, Diagnostic, IncompatibleChange, RuntimeFault
from shopfloor_st.program import Instance, Program, VariableInfo, check_source, compile_source
from shopfloor_st.revision import normalise_source, source_revision
from shopfloor_st.simulate import check, simulate

__all__ = [
    "CompileError",
    "Diagnostic",
    "IncompatibleChange",
    "Instance",
    "Program",
    "RuntimeFault",
    "VariableInfo",
    "check",
    "check_source",
    "compile_source",
    "normalise_source",
    "simulate",
    "source_revision",
]
