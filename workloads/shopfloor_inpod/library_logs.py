"""Library chatter kept out of the runtime's and the bridge's logs.

pymodbus logs every failed exchange as an ERROR followed by a dump of the last frames (`>>>>> send: 0x0 ...`), once
per poll while a device misbehaves. The runtime's field links and the bridge's Modbus sources report a failure
themselves, naming the device; pymodbus's own lines are kept for whoever asks for its DEBUG detail.
"""

from __future__ import annotations

import logging

PYMODBUS_LOGGER = "pymodbus.logging"  # pymodbus logs through this one logger (pymodbus.logging.Log)


class PymodbusDetail(logging.Filter):
    """Passes pymodbus's records only while the `pymodbus` logger is at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return logging.getLogger("pymodbus").isEnabledFor(logging.DEBUG)


def quiet_pymodbus() -> None:
    """Install the filter once per process (idempotent)."""
    target = logging.getLogger(PYMODBUS_LOGGER)
    if not any(isinstance(existing, PymodbusDetail) for existing in target.filters):
        target.addFilter(PymodbusDetail())
