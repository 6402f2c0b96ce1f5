"""Online change: a new program revision compiled off the scan thread, checked against the running manifest and
swapped in at a scan boundary by the engine, keeping state through `migrate_from`. Whatever is refused leaves the
running program untouched, and the outcome says why."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shopfloor_api.virtualplc import VirtualPLCSpec
from shopfloor_st import CompileError, Diagnostic, source_revision
from shopfloor_vplc.bindings import check_compatible
from shopfloor_vplc.engine import ScanEngine
from shopfloor_vplc.modbus_codec import Binding
from shopfloor_vplc.program import compile_program
from shopfloor_vplc.remote_engine import RemoteEngine


@dataclass(frozen=True)
class ChangeOutcome:
    accepted: bool
    revision: str
    reason: str = ""
    unchanged: bool = False

    def message(self) -> str:
        if self.unchanged:
            return f"program unchanged ({self.revision})"
        if self.accepted:
            return f"online change: now running {self.revision}"
        return f"online change refused, the running program continues: {self.reason}"


async def online_change(
    engine: ScanEngine | RemoteEngine,
    spec: VirtualPLCSpec,
    bindings: Sequence[Binding],
    source: str,
    filename: str,
    locate: Callable[[Diagnostic], Diagnostic] | None = None,
    served: Sequence[tuple[str, str]] = (),
    timeout_s: float = 10.0,
) -> ChangeOutcome:
    try:
        program = await asyncio.to_thread(compile_program, source, filename, spec.program.entrypoint)
    except CompileError as exc:
        diagnostics = [locate(d) if locate else d for d in exc.diagnostics]
        return ChangeOutcome(False, source_revision(source), "\n".join(str(d) for d in diagnostics))
    if program.revision == engine.program.revision:
        return ChangeOutcome(True, program.revision, unchanged=True)
    reason = check_compatible(spec, program, bindings, served)
    if reason is not None:
        return ChangeOutcome(False, program.revision, reason)
    future = engine.request_swap(program)
    try:
        result = await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
    except TimeoutError:
        return ChangeOutcome(False, program.revision, f"the scan did not take the change within {timeout_s:.0f} s")
    return ChangeOutcome(result.accepted, result.revision, result.reason)
