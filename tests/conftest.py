"""Suite-wide settings."""

from __future__ import annotations

import signal
from types import FrameType


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure() -> None:
    # A terminated run tears its fixtures down (control plane, brokers, runtimes) like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
