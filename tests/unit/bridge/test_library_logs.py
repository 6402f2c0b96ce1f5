"""pymodbus's frame dumps stay out of the bridge's and the runtime's logs unless its DEBUG detail is asked for."""

from __future__ import annotations

import logging

import pytest

import shopfloor_bridge.modbus_source  # noqa: F401  (installs the filter, as the bridge does at start)
from shopfloor_inpod.library_logs import PYMODBUS_LOGGER, PymodbusDetail, quiet_pymodbus


def test_the_bridge_installs_the_filter_once() -> None:
    quiet_pymodbus()
    filters = [f for f in logging.getLogger(PYMODBUS_LOGGER).filters if isinstance(f, PymodbusDetail)]
    assert len(filters) == 1


def test_frame_dumps_pass_only_with_pymodbus_debug(caplog: pytest.LogCaptureFixture) -> None:
    library = logging.getLogger(PYMODBUS_LOGGER)
    caplog.set_level(logging.INFO)
    library.error("Cancel send, because not connected!")
    library.error(">>>>> send: 0x0 0xa8 0x0 0x0")
    assert not [r for r in caplog.records if r.name == PYMODBUS_LOGGER]
    logging.getLogger("pymodbus").setLevel(logging.DEBUG)
    try:
        library.error(">>>>> send: 0x0 0xa8 0x0 0x0")
    finally:
        logging.getLogger("pymodbus").setLevel(logging.NOTSET)
    assert [r.getMessage() for r in caplog.records if r.name == PYMODBUS_LOGGER] == [">>>>> send: 0x0 0xa8 0x0 0x0"]
