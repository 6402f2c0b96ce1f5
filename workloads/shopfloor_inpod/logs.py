"""`--log-level` of the workloads' `run` commands (`shopfloor-vplc run`, `shopfloor-bridge run`).

The level is the flag's, else `SHOPFLOOR_LOG_LEVEL`'s (a pod sets it without changing its args), else INFO: at INFO
the logs carry lifecycle lines (real-time grant, Lease transitions, state sync), nothing per scan or per request.
The libraries' own INFO lines (asyncua logs each connection and each method call) stay out unless the level is
DEBUG.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping

from shopfloor_api.runtime_contract import ENV_LOG_LEVEL

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LEVEL = "INFO"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LIBRARY_LOGGERS = ("asyncua", "pymodbus")


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        default=None,
        help=f"DEBUG adds the libraries' own lines (default: ${ENV_LOG_LEVEL}, else {DEFAULT_LEVEL})",
    )


def log_level(flag: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The flag's level, else the environment's, else INFO; ValueError (naming the variable) for a bad one."""
    if flag is not None:
        return flag
    text = environ.get(ENV_LOG_LEVEL, "").strip()
    if not text:
        return DEFAULT_LEVEL
    if text.upper() not in LEVELS:
        raise ValueError(f"{ENV_LOG_LEVEL}: {text!r} is not one of {', '.join(LEVELS)}")
    return text.upper()


def configure_logging(level: str) -> None:
    """Root at `level`, one line format; the libraries at WARNING (or `level` when higher) unless DEBUG."""
    logging.basicConfig(format=FORMAT)
    logging.getLogger().setLevel(level)
    library_level = logging.NOTSET if level == "DEBUG" else max(logging.WARNING, logging.getLevelNamesMapping()[level])
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
