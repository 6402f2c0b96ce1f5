"""Operator settings from environment and flags; program checks."""

import pytest

from shopfloor_api.common import Duration
from shopfloor_api.virtualplc import ProgramSpec
from shopfloor_operator.program import check_program
from shopfloor_operator.settings import OperatorSettings
from shopfloor_st import source_revision

from .conftest import SOURCE


def test_defaults_follow_the_design() -> None:
    settings = OperatorSettings.from_sources({}, [])
    assert settings.realtime_node_selector == {"feature.node.kubernetes.io/kernel-config.PREEMPT_RT": "true"}
    assert settings.realtime_toleration_key == "shopfloor.io/realtime"
    assert settings.node_lost_grace == Duration("10s")
    assert settings.namespaces == []


def test_environment_then_flags() -> None:
    environ = {"SHOPFLOOR_NODE_LOST_GRACE": "20s", "SHOPFLOOR_NAMESPACES": "a,b", "SHOPFLOOR_STANDALONE": "true"}
    settings = OperatorSettings.from_sources(environ, ["--node-lost-grace", "5s", "--realtime-node-selector", "rt=1"])
    assert settings.node_lost_grace == Duration("5s")
    assert settings.namespaces == ["a", "b"] and settings.standalone is True
    assert settings.realtime_node_selector == {"rt": "1"}


def test_bad_setting_names_it() -> None:
    with pytest.raises(SystemExit, match="node_lost_grace"):
        OperatorSettings.from_sources({"SHOPFLOOR_NODE_LOST_GRACE": "soon"}, [])


def no_configmaps(name: str, key: str) -> str | None:
    return None


def test_valid_program_gets_its_revision() -> None:
    check = check_program(ProgramSpec(source=SOURCE), no_configmaps)
    assert check.valid and check.revision == source_revision(SOURCE)


def test_sha256_pin_mismatch_deploys_nothing() -> None:
    check = check_program(ProgramSpec(source=SOURCE, sha256="0" * 64), no_configmaps)
    assert not check.valid and check.reason == "ChecksumMismatch"
    pinned = check_program(ProgramSpec(source=SOURCE, sha256=source_revision(SOURCE)), no_configmaps)
    assert pinned.valid


def test_configmap_source() -> None:
    spec = ProgramSpec.model_validate({"configMapRef": {"name": "logic", "key": "main.st"}})
    assert check_program(spec, no_configmaps).reason == "SourceNotFound"
    found = check_program(spec, lambda name, key: SOURCE if (name, key) == ("logic", "main.st") else None)
    assert found.valid


def test_compile_error_gives_line_and_column() -> None:
    broken = "PROGRAM Main\nVAR x : INT; END_VAR\nx := ;\nEND_PROGRAM\n"
    check = check_program(ProgramSpec(source=broken), no_configmaps)
    assert not check.valid and check.reason == "CompileError"
    assert check.message.startswith("3:"), check.message


def test_replicas_get_distinct_priorities_unless_told() -> None:
    from shopfloor_operator.settings import effective_priority

    assert effective_priority(OperatorSettings(priority=7)) == 7
    drawn = {effective_priority(OperatorSettings()) for _ in range(20)}
    assert len(drawn) > 1, "equal priorities freeze every replica"


def test_a_boolean_flag_alone_means_true() -> None:
    assert OperatorSettings.from_sources({}, ["--standalone"]).standalone is True
    assert OperatorSettings.from_sources({}, ["--standalone", "false"]).standalone is False


def test_a_program_is_checked_once_however_many_plcs_run_it() -> None:
    from shopfloor_operator.program import compile_errors

    source = SOURCE + "\n(* checked once *)\n"
    before = compile_errors.cache_info()
    for _ in range(5):
        assert check_program(ProgramSpec(source=source), lambda *_: None).valid
    after = compile_errors.cache_info()
    assert after.misses == before.misses + 1 and after.hits == before.hits + 4


def test_the_check_runs_nothing_of_the_program() -> None:
    from shopfloor_st.compiler import compile_unit

    checked = compile_unit(SOURCE, "program.st", execute=False)
    compiled = compile_unit(SOURCE, "program.st")
    class_name = next(iter(compiled.programs.values()))[0]
    assert class_name in compiled.namespace and class_name not in checked.namespace
    assert check_program(ProgramSpec(source="PROGRAM Main\nx := ;\nEND_PROGRAM\n"), lambda *_: None).reason == (
        "CompileError"
    )
