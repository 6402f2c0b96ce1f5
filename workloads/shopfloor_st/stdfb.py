"""The standard function blocks (IEC 61131-3 §2.5.2.3): timers on the scan's time, counters, edges, bistables.

Timers take the current time from the scan (`now` in nanoseconds), so on virtual time they are exact and
deterministic. TIME values (PT, ET) are milliseconds.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCAN_TIME", "STANDARD_FBS"]

_MS = 1_000_000

# The type named in HIDDEN_STATE for a field holding an absolute time of the scan clock (a `now`, ns) or None.
# Such a time means nothing on another node's clock: a state image carries it relative to the capture's `now`
# (see shopfloor_st.state_image). Every slot of a standard FB is a member (MEMBERS) or listed in HIDDEN_STATE.
SCAN_TIME = "SCAN_TIME"


class TON:
    """On-delay: Q rises PT after IN rose, falls with IN."""

    __slots__ = ("_g", "_start", "v_ET", "v_IN", "v_PT", "v_Q")
    MEMBERS = (
        ("IN", "VAR_INPUT", "BOOL"),
        ("PT", "VAR_INPUT", "TIME"),
        ("Q", "VAR_OUTPUT", "BOOL"),
        ("ET", "VAR_OUTPUT", "TIME"),
    )
    HIDDEN_STATE = (("_start", SCAN_TIME),)

    def __init__(self, g: Any = None) -> None:
        self._g = g
        self.v_IN = False
        self.v_PT = 0
        self.v_Q = False
        self.v_ET = 0
        self._start: int | None = None

    def _st_body(self, now: int) -> None:
        if not self.v_IN:
            self._start = None
            self.v_Q = False
            self.v_ET = 0
            return
        if self._start is None:
            self._start = now
        elapsed = (now - self._start) // _MS
        self.v_ET = min(elapsed, self.v_PT)
        self.v_Q = elapsed >= self.v_PT


class TOF:
    """Off-delay: Q follows IN up at once and falls PT after IN fell."""

    __slots__ = ("_g", "_prev", "_start", "v_ET", "v_IN", "v_PT", "v_Q")
    MEMBERS = TON.MEMBERS
    HIDDEN_STATE = (("_prev", "BOOL"), ("_start", SCAN_TIME))

    def __init__(self, g: Any = None) -> None:
        self._g = g
        self.v_IN = False
        self.v_PT = 0
        self.v_Q = False
        self.v_ET = 0
        self._prev = False
        self._start: int | None = None

    def _st_body(self, now: int) -> None:
        if self.v_IN:
            self.v_Q = True
            self.v_ET = 0
            self._start = None
        else:
            if self._prev:
                self._start = now
            if self._start is not None:
                elapsed = (now - self._start) // _MS
                self.v_ET = min(elapsed, self.v_PT)
                if elapsed >= self.v_PT:
                    self.v_Q = False
                    self._start = None
        self._prev = self.v_IN


class TP:
    """Pulse: a rising IN starts a pulse of exactly PT on Q; IN changes during the pulse are ignored."""

    __slots__ = ("_g", "_prev", "_start", "v_ET", "v_IN", "v_PT", "v_Q")
    MEMBERS = TON.MEMBERS
    HIDDEN_STATE = (("_prev", "BOOL"), ("_start", SCAN_TIME))

    def __init__(self, g: Any = None) -> None:
        self._g = g
        self.v_IN = False
        self.v_PT = 0
        self.v_Q = False
        self.v_ET = 0
        self._prev = False
        self._start: int | None = None

    def _st_body(self, now: int) -> None:
        if self._start is None and self.v_IN and not self._prev and not self.v_Q:
            self._start = now
        if self._start is not None:
            elapsed = (now - self._start) // _MS
            self.v_ET = min(elapsed, self.v_PT)
            self.v_Q = elapsed < self.v_PT
            if not self.v_Q:
                self._start = None
        elif not self.v_IN:
            self.v_ET = 0
        self._prev = self.v_IN


_INT_MAX, _INT_MIN = 32767, -32768


class CTU:
    """Up counter: CV counts rising edges of CU (saturates at the INT maximum), R resets, Q = CV >= PV."""

    __slots__ = ("_g", "_prev", "v_CU", "v_CV", "v_PV", "v_Q", "v_R")
    MEMBERS = (
        ("CU", "VAR_INPUT", "BOOL"),
        ("R", "VAR_INPUT", "BOOL"),
        ("PV", "VAR_INPUT", "INT"),
        ("Q", "VAR_OUTPUT", "BOOL"),
        ("CV", "VAR_OUTPUT", "INT"),
    )
    HIDDEN_STATE = (("_prev", "BOOL"),)

    ALIASES = {"RESET": "R"}  # CODESYS's Standard library names these inputs RESET and LOAD

    def __init__(self, g: Any = None) -> None:
        self._g = g
        self.v_CU = self.v_R = self.v_Q = self._prev = False
        self.v_PV = self.v_CV = 0

    def _st_body(self, now: int) -> None:
        if self.v_R:
            self.v_CV = 0
        elif self.v_CU and not self._prev and self.v_CV < _INT_MAX:
            self.v_CV += 1
        self._prev = self.v_CU
        self.v_Q = self.v_CV >= self.v_PV


class CTD:
    """Down counter: LD loads PV, rising edges of CD count down (saturates at the INT minimum), Q = CV <= 0."""

    __slots__ = ("_g", "_prev", "v_CD", "v_CV", "v_LD", "v_PV", "v_Q")
    MEMBERS = (
        ("CD", "VAR_INPUT", "BOOL"),
        ("LD", "VAR_INPUT", "BOOL"),
        ("PV", "VAR_INPUT", "INT"),
        ("Q", "VAR_OUTPUT", "BOOL"),
        ("CV", "VAR_OUTPUT", "INT"),
    )
    HIDDEN_STATE = (("_prev", "BOOL"),)

    ALIASES = {"LOAD": "LD"}  # CODESYS's Standard library names these inputs RESET and LOAD

    def __init__(self, g: Any = None) -> None:
        self._g = g
        self.v_CD = self.v_LD = self.v_Q = self._prev = False
        self.v_PV = self.v_CV = 0

    def _st_body(self, now: int) -> None:
        if self.v_LD:
            self.v_CV = self.v_PV
        elif self.v_CD and not self._prev and self.v_CV > _INT_MIN:
            self.v_CV -= 1
        self._prev = self.v_CD
        self.v_Q = self.v_CV <= 0


class CTUD:
    """Up/down counter: R resets, LD loads PV, then CU counts up and CD down; QU = CV >= PV, QD = CV <= 0."""

    __slots__ = ("_g", "_prev_d", "_prev_u", "v_CD", "v_CU", "v_CV", "v_LD", "v_PV", "v_QD", "v_QU", "v_R")
    MEMBERS = (
        ("CU", "VAR_INPUT", "BOOL"),
        ("CD", "VAR_INPUT", "BOOL"),
        ("R", "VAR_INPUT", "BOOL"),
        ("LD", "VAR_INPUT", "BOOL"),
        ("PV", "VAR_INPUT", "INT"),
        ("QU", "VAR_OUTPUT", "BOOL"),
        ("QD", "VAR_OUTPUT", "BOOL"),
        ("CV", "VAR_OUTPUT", "INT"),
    )
    HIDDEN_STATE = (("_prev_u", "BOOL"), ("_prev_d", "BOOL"))

    ALIASES = {"RESET": "R", "LOAD": "LD"}  # CODESYS's Standard library names these inputs RESET and LOAD

    def __init__(self, g: Any = None) -> None:
        self._g = g
        self.v_CU = self.v_CD = self.v_R = self.v_LD = self.v_QU = self.v_QD = False
        self._prev_u = self._prev_d = False
        self.v_PV = self.v_CV = 0

    def _st_body(self, now: int) -> None:
        up, down = self.v_CU and not self._prev_u, self.v_CD and not self._prev_d
        if self.v_R:
            self.v_CV = 0
        elif self.v_LD:
            self.v_CV = self.v_PV
        elif up and not down and self.v_CV < _INT_MAX:
            self.v_CV += 1
        elif down and not up and self.v_CV > _INT_MIN:
            self.v_CV -= 1
        self._prev_u, self._prev_d = self.v_CU, self.v_CD
        self.v_QU = self.v_CV >= self.v_PV
        self.v_QD = self.v_CV <= 0


class R_TRIG:
    """Rising edge: Q is TRUE for the one call in which CLK went from FALSE to TRUE."""

    __slots__ = ("_g", "v_CLK", "v_M", "v_Q")
    MEMBERS = (("CLK", "VAR_INPUT", "BOOL"), ("Q", "VAR_OUTPUT", "BOOL"))
    HIDDEN_STATE = (("v_M", "BOOL"),)  # edge memory, not an IEC member

    def __init__(self, g: Any = None) -> None:
        self._g = g
        self.v_CLK = self.v_Q = self.v_M = False

    def _st_body(self, now: int) -> None:
        self.v_Q = self.v_CLK and not self.v_M
        self.v_M = self.v_CLK


class F_TRIG:
    """Falling edge. M starts TRUE, so a CLK that starts FALSE is no edge: CODESYS's Standard library (IEC 61131-3
    ed. 1); ed. 2 makes that first FALSE an edge (CODESYS help, "SF_F_TRIG": special behaviour in the 1st cycle)."""

    __slots__ = ("_g", "v_CLK", "v_M", "v_Q")
    MEMBERS = R_TRIG.MEMBERS
    HIDDEN_STATE = (("v_M", "BOOL"),)

    def __init__(self, g: Any = None) -> None:
        self._g = g
        self.v_CLK = self.v_Q = False
        self.v_M = True

    def _st_body(self, now: int) -> None:
        self.v_Q = not self.v_CLK and not self.v_M
        self.v_M = not self.v_CLK


class SR:
    """Set-dominant bistable: Q1 := S1 OR (NOT R AND Q1)."""

    __slots__ = ("_g", "v_Q1", "v_R", "v_S1")
    MEMBERS = (("S1", "VAR_INPUT", "BOOL"), ("R", "VAR_INPUT", "BOOL"), ("Q1", "VAR_OUTPUT", "BOOL"))
    HIDDEN_STATE = ()

    ALIASES = {"SET1": "S1", "RESET": "R"}  # CODESYS's Standard library names these inputs SET1 and RESET

    def __init__(self, g: Any = None) -> None:
        self._g = g
        self.v_S1 = self.v_R = self.v_Q1 = False

    def _st_body(self, now: int) -> None:
        self.v_Q1 = self.v_S1 or (not self.v_R and self.v_Q1)


class RS:
    """Reset-dominant bistable: Q1 := NOT R1 AND (S OR Q1)."""

    __slots__ = ("_g", "v_Q1", "v_R1", "v_S")
    MEMBERS = (("S", "VAR_INPUT", "BOOL"), ("R1", "VAR_INPUT", "BOOL"), ("Q1", "VAR_OUTPUT", "BOOL"))
    HIDDEN_STATE = ()

    ALIASES = {"SET": "S", "RESET1": "R1"}  # CODESYS's Standard library names these inputs SET and RESET1

    def __init__(self, g: Any = None) -> None:
        self._g = g
        self.v_S = self.v_R1 = self.v_Q1 = False

    def _st_body(self, now: int) -> None:
        self.v_Q1 = not self.v_R1 and (self.v_S or self.v_Q1)


STANDARD_FBS: dict[str, type] = {cls.__name__: cls for cls in (TON, TOF, TP, CTU, CTD, CTUD, R_TRIG, F_TRIG, SR, RS)}
