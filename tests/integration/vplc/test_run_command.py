"""`shopfloor-vplc run FILE` as a process: online change when FILE changes, safe state on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.vplc.conftest import RemoteIO
from tests.integration.vplc.runtime_support import TANK, field_device
from tests.support.mosquitto import free_port
from tests.support.waiting import async_wait_for
from tests.unit.vplc.manifests import write_manifest

# A hang fails this test with a traceback instead of stalling the suite.
pytestmark = pytest.mark.timeout(60)


class RunProcess:
    """The runtime process; its output lines are collected as they come."""

    def __init__(self, manifest: Path) -> None:
        command = [sys.executable, "-m", "shopfloor_vplc.cli", "run", str(manifest)]
        command += ["--modbus-port", str(free_port()), "--http-port", str(free_port())]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ}
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def saw(self, fragment: str) -> bool:
        return any(fragment in line for line in self.lines)

    async def wait_for_line(self, fragment: str, timeout: float = 20) -> None:
        async def seen() -> bool:
            if self.process.poll() is not None and not self.saw(fragment):
                raise AssertionError(f"runtime exited ({self.process.returncode}):\n" + "\n".join(self.lines))
            return self.saw(fragment)

        await async_wait_for(seen, timeout=timeout, what=f"output {fragment!r}; got {self.lines}")


@pytest.fixture
def run_process(tmp_path: Path) -> Iterator[list[RunProcess]]:
    started: list[RunProcess] = []
    yield started
    for each in started:
        if each.process.poll() is None:
            each.process.kill()
            each.process.wait(10)


async def test_sigterm_writes_the_safe_state_to_the_field_device(
    tmp_path: Path, remote_io: RemoteIO, run_process: list[RunProcess]
) -> None:
    manifest = write_manifest(
        tmp_path / "tank.yaml",
        TANK,
        cycleTime="5ms",
        io={"fieldDevices": [field_device(remote_io.port)]},
        safeState={"Pump": False},
    )
    await remote_io.set_register(0, 900)
    runtime = RunProcess(manifest)
    run_process.append(runtime)
    await runtime.wait_for_line("mixer-1: running sha256:")
    await async_wait_for(lambda: remote_io.coil(0), timeout=10, what="pump on")
    runtime.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(runtime.process.wait, 20) == 0
    assert await remote_io.coil(0) is False
    assert runtime.saw("stopped: safe state written")
    assert (tmp_path / ".shopfloor" / "mixer-1.retain.json").is_file()


async def test_editing_the_file_changes_the_program_online_or_says_why_not(
    tmp_path: Path, run_process: list[RunProcess]
) -> None:
    source = tmp_path / "tank.st"
    source.write_text(TANK)
    runtime = RunProcess(source)
    run_process.append(runtime)
    await runtime.wait_for_line("tank: running sha256:")
    source.write_text(TANK.replace("Count := Count + 1;", "Count := Count + 2;"))
    await runtime.wait_for_line("online change: now running sha256:")
    source.write_text(TANK.replace("Count := Count + 1;", "Count := Missing;"))
    await runtime.wait_for_line("online change refused, the running program continues:")
    assert runtime.saw("undeclared name 'Missing'")
    runtime.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(runtime.process.wait, 20) == 0
