"""IEC 61131-3 Structured Text compiler: parse, check and compile ST programs to Python (pure, no I/O)."""

from shopfloor_st.revision import normalise_source, source_revision

__all__ = ["normalise_source", "source_revision"]
