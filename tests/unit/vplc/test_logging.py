"""`shopfloor-vplc run --log-level` and `SHOPFLOOR_LOG_LEVEL` (shopfloor_inpod.logs): INFO carries the runtime's
lifecycle lines and none of the libraries' own INFO chatter."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopfloor_api.runtime_contract import ENV_LOG_LEVEL
from shopfloor_api.virtualplc import VirtualPLCSpec
from shopfloor_inpod.logs import LIBRARY_LOGGERS, configure_logging, log_level
from shopfloor_vplc.cli import build_parser, main
from shopfloor_vplc.program import compile_program
from shopfloor_vplc.runtime import PlcRuntime, RuntimeOptions

PROGRAM = "PROGRAM Main\nVAR Count : DINT; END_VAR\nCount := Count + 1;\nEND_PROGRAM\n"


@pytest.fixture(autouse=True)
def restore_levels(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(ENV_LOG_LEVEL, raising=False)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    libraries = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    for name, saved in libraries.items():
        logging.getLogger(name).setLevel(saved)


def messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith(logger)]


def test_the_flag_then_the_environment_then_info() -> None:
    assert log_level(None, {}) == "INFO"
    assert log_level(None, {ENV_LOG_LEVEL: "debug"}) == "DEBUG"
    assert log_level("ERROR", {ENV_LOG_LEVEL: "DEBUG"}) == "ERROR"
    assert log_level(None, {ENV_LOG_LEVEL: " "}) == "INFO"
    with pytest.raises(ValueError, match=f"{ENV_LOG_LEVEL}: 'loud' is not one of DEBUG, INFO, WARNING, ERROR"):
        log_level(None, {ENV_LOG_LEVEL: "loud"})


def test_run_takes_the_bridges_choices_in_and_out_of_a_pod() -> None:
    parser = build_parser()
    assert parser.parse_args(["run", "--in-pod", "--log-level", "DEBUG"]).log_level == "DEBUG"
    assert parser.parse_args(["run", "plc.yaml", "--log-level", "WARNING"]).log_level == "WARNING"
    assert parser.parse_args(["run", "plc.yaml"]).log_level is None  # then SHOPFLOOR_LOG_LEVEL, then INFO
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "plc.yaml", "--log-level", "verbose"])


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["run"], None, logging.INFO),
        (["run"], "DEBUG", logging.DEBUG),
        (["run", "--log-level", "ERROR"], "DEBUG", logging.ERROR),
    ],
)
def test_main_configures_the_chosen_level(
    argv: list[str], env: str | None, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if env is not None:
        monkeypatch.setenv(ENV_LOG_LEVEL, env)
    assert main(argv) == 1  # no FILE: exits before serving anything, logging configured
    assert logging.getLogger().level == expected


def test_a_bad_environment_level_exits_1_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV_LOG_LEVEL, "chatty")
    assert main(["run", "--in-pod"]) == 1
    assert capsys.readouterr().err.startswith(f"{ENV_LOG_LEVEL}: 'chatty' is not one of")


def test_check_stays_at_warning_whatever_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_LOG_LEVEL, "DEBUG")
    path = tmp_path / "main.st"
    path.write_text(PROGRAM)
    assert main(["check", str(path)]) == 0
    assert logging.getLogger().level == logging.WARNING


async def start_and_stop_a_runtime() -> None:
    """A runtime that serves nothing (no Modbus, no OPC UA, no HTTP port), its scan in this process."""
    spec = VirtualPLCSpec.model_validate({"program": {"source": PROGRAM}, "io": {"modbus": {"enabled": False}}})
    program = compile_program(PROGRAM, "main.st", "")
    runtime = PlcRuntime("mixer-1", spec, program, RuntimeOptions(http_port=None, isolated_scan=False))
    await runtime.start()
    await runtime.shutdown()


@pytest.mark.parametrize(("level", "shown"), [("INFO", True), ("WARNING", False)])
async def test_info_shows_the_runtimes_lifecycle_lines(
    level: str, shown: bool, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging(level)
    await start_and_stop_a_runtime()
    lines = messages(caplog, "shopfloor_vplc.runtime")
    assert any(line.startswith("real-time: normal scheduling") for line in lines) is shown, lines


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("WARNING", False), ("DEBUG", True)])
def test_library_info_lines_only_at_debug(level: str, shown: bool, caplog: pytest.LogCaptureFixture) -> None:
    configure_logging(level)
    logging.getLogger("asyncua.server.binary_server_asyncio").info("New connection from %s", "peer")
    logging.getLogger("asyncua.server.address_space").info("Calling: %s", "method")
    logging.getLogger("pymodbus.logging").info("connected")
    assert bool(messages(caplog, "asyncua")) is shown
    assert bool(messages(caplog, "pymodbus")) is shown


def test_library_warnings_stay_out_at_error(caplog: pytest.LogCaptureFixture) -> None:
    configure_logging("INFO")
    logging.getLogger("asyncua.client").warning("shown at INFO")
    configure_logging("ERROR")
    logging.getLogger("asyncua.client").warning("not shown at ERROR")
    assert messages(caplog, "asyncua") == ["shown at INFO"]
