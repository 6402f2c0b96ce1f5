"""`shopfloor-vplc check` and `simulate`: the output and exit codes of DESIGN.md §3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shopfloor_vplc.cli import main
from tests.unit.vplc.manifests import write_manifest

PROGRAM = """PROGRAM Main
VAR
  Count : DINT;
  Level : INT;
  Pump : BOOL;
  Timer : TON;
  Ratio : REAL := 0.5;
  Name : STRING := 'mixer';
  Trend : ARRAY[1..3] OF INT;
  Divisor : INT := 1;
  Quotient : INT;
END_VAR
Count := Count + 1;
Timer(IN := TRUE, PT := T#30ms);
Pump := Timer.Q AND Level > 10;
Trend[2] := Level;
Quotient := 10 / Divisor;
END_PROGRAM
"""


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "mixer.st"
    path.write_text(PROGRAM)
    return path


def manifest(tmp_path: Path, variable: str) -> Path:
    io = {"modbus": {"map": [{"variable": variable, "table": "holdingRegisters", "address": 0}]}}
    return write_manifest(tmp_path / "mixer.yaml", PROGRAM, io=io)


def test_check_ok_names_the_revision(program: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(program)]) == 0
    assert capsys.readouterr().out.startswith(f"{program}: ok, Main sha256:")


def test_check_reports_file_line_col_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.st"
    bad.write_text("PROGRAM Main\nVAR x : INT; END_VAR\nx := y + 1;\nEND_PROGRAM\n")
    assert main(["check", str(bad)]) == 1
    assert capsys.readouterr().err.splitlines()[0] == f"{bad}:3:6: undeclared name 'y'"


def test_check_of_a_manifest_checks_its_mappings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(manifest(tmp_path, "Level"))]) == 0
    assert main(["check", str(manifest(tmp_path, "Missing"))]) == 1
    assert "spec.io.modbus.map[0].variable: Missing is not declared in Main" in capsys.readouterr().err


def test_simulate_prints_the_variables_as_json(program: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(program), "--cycles", "4", "--cycle-time", "10ms", "--set", "Level=20"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {
        "Count": 4,
        "Level": 20,
        "Pump": True,
        "Timer": {"IN": True, "PT": 30, "Q": True, "ET": 30},
        "Ratio": 0.5,
        "Name": "mixer",
        "Trend": [0, 20, 0],
        "Divisor": 1,
        "Quotient": 10,
    }


def test_simulate_timers_follow_virtual_time(program: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(program), "--cycles", "3", "--cycle-time", "10ms"]) == 0
    assert json.loads(capsys.readouterr().out)["Timer"]["Q"] is False  # t = 0, 10, 20 ms: not yet 30 ms


def test_simulate_runtime_fault_exits_2(program: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(program), "--cycles", "2", "--set", "Divisor=0"]) == 2
    assert "division by zero" in capsys.readouterr().err


def test_simulate_bad_override_names_the_variable(program: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(program), "--cycles", "1", "--set", "Nope=1"]) == 1
    assert "Nope" in capsys.readouterr().err
    assert main(["simulate", str(program), "--cycles", "1", "--set", "Level"]) == 1
    assert "expected NAME=VALUE" in capsys.readouterr().err


def test_simulate_of_a_manifest_runs_its_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(manifest(tmp_path, "Level")), "--cycles", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["Count"] == 2


def test_errors_in_a_manifest_point_into_the_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path / "bad.yaml", "PROGRAM Main\nVAR x : INT; END_VAR\nx := y + 1;\nEND_PROGRAM\n")
    assert main(["check", str(path)]) == 1
    located = capsys.readouterr().err.splitlines()[0]
    line, col = (int(part) for part in located.split(":")[1:3])
    assert path.read_text().splitlines()[line - 1][col - 1 :].startswith("y + 1;")
