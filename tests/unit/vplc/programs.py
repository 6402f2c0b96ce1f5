"""Small Structured Text programs the runtime tests run."""

MIXER = """
PROGRAM Main
VAR
  Count : DINT;
  Level : INT;
  Pump : BOOL;
  Speed : INT := 100;
  Divisor : INT := 1;
  Quotient : INT;
  Hang : BOOL;
  Loops : DINT := 0;
  I : DINT;
END_VAR
VAR RETAIN
  Starts : DINT;
END_VAR
Count := Count + 1;
Pump := Level > 50;
Quotient := 100 / Divisor;
WHILE Hang DO
  Count := Count + 1;
END_WHILE;
FOR I := 1 TO Loops DO
  Speed := Speed;
END_FOR;
END_PROGRAM
"""

# The same program with one more variable: an online change that keeps every value.
MIXER_V2 = MIXER.replace("  Hang : BOOL;\n", "  Hang : BOOL;\n  Extra : INT := 5;\n").replace(
    "Count := Count + 1;", "Count := Count + 1;\nExtra := Extra + 1;"
)

# Retyping a RETAIN variable cannot carry its value over safely: refused.
MIXER_RETYPED = MIXER.replace("  Starts : DINT;", "  Starts : STRING;")
