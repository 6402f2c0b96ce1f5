"""What the compiler and the running program report: diagnostics, compile errors, runtime faults, refused changes."""

from dataclasses import dataclass

__all__ = ["CompileError", "Diagnostic", "IncompatibleChange", "RuntimeFault"]


@dataclass(frozen=True)
class Diagnostic:
    """One finding at a 1-based line and column; `severity` is "error" or "warning"."""

    filename: str
    line: int
    col: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.col}: {self.message}"


class CompileError(Exception):
    """The program does not compile; `diagnostics` holds every error found, in source order."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


class RuntimeFault(Exception):
    """The running program faulted (division by zero, index out of range, ...) at an ST line and column."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        self.message = message
        self.line = line
        self.col = col
        super().__init__(f"line {line}, column {col}: {message}" if line else message)


class IncompatibleChange(Exception):
    """An online change would lose or retype a retained variable; the caller keeps the old program."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
