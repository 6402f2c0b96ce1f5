"""Content revision of a Structured Text program.

The operator names program revisions with it and the runtime reports the one it runs, so both must agree:
the same source is the same revision everywhere, whatever the editor did to line ends or trailing blanks.
"""

import hashlib

__all__ = ["normalise_source", "source_revision"]


def normalise_source(source: str) -> str:
    """Source with `\\n` line ends, no trailing whitespace per line and no leading/trailing blank lines."""
    lines = [line.rstrip() for line in source.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def source_revision(source: str) -> str:
    """`sha256:<hex>` of the normalised source."""
    return "sha256:" + hashlib.sha256(normalise_source(source).encode("utf-8")).hexdigest()
