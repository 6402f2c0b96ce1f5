"""The checked-in CRDs match the models, and are structural schemas the API server accepts."""

from pathlib import Path
from typing import Any

import yaml

from shopfloor_api import crdgen

CRDS = Path(__file__).resolve().parents[3] / "crds"


def walk(node: Any, path: str = ""):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def schema_of(kind_file: str) -> dict[str, Any]:
    return crdgen.all_crds()[kind_file]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_checked_in_crds_match_the_models() -> None:
    diffs = crdgen.drift(CRDS)
    assert not diffs, "crds/ is out of date; run `make crds`\n" + "\n".join(diffs)


def test_check_reports_drift(tmp_path: Path) -> None:
    assert crdgen.main([str(tmp_path)]) == 0
    assert crdgen.main(["--check", str(tmp_path)]) == 0
    victim = tmp_path / "virtualplcs.shopfloor.io.yaml"
    victim.write_text(victim.read_text().replace("default: 10ms", "default: 20ms"))
    assert crdgen.main(["--check", str(tmp_path)]) == 1


def test_structural() -> None:
    for name in crdgen.all_crds():
        for path, node in walk(schema_of(name)):
            assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
            assert node.get("additionalProperties") is not False, path
            if path.endswith("/properties") or path.endswith("x-kubernetes-validations"):
                continue
            if "properties" in node or "items" in node:
                assert node.get("type") in ("object", "array"), path


def test_descriptions_everywhere() -> None:
    for name in crdgen.all_crds():
        for path, node in walk(schema_of(name)):
            if path.endswith("/properties"):
                for field, child in node.items():
                    if path == "/properties" and field == "metadata":
                        continue  # the API server forbids anything but a type here
                    assert child.get("description"), f"{path}/{field}"


def test_cel_rules_and_bounds() -> None:
    spec = schema_of("virtualplcs.shopfloor.io.yaml")["properties"]["spec"]
    rules = [rule["rule"] for rule in spec["x-kubernetes-validations"]]
    assert any("duration(self.watchdog) >= duration(self.cycleTime)" in rule for rule in rules)
    assert any("realtimePriority" in rule for rule in rules)
    assert "has(self.source) != has(self.configMapRef)" in str(spec["properties"]["program"])
    assert "default" not in spec["properties"]["watchdog"], "watchdog's default depends on cycleTime"
    assert spec["properties"]["cycleTime"]["default"] == "10ms"
    assert spec["properties"]["program"]["properties"]["source"]["maxLength"] > 0
    bridge = schema_of("protocolbridges.shopfloor.io.yaml")["properties"]["spec"]
    assert bridge["properties"]["sources"]["x-kubernetes-list-map-keys"] == ["name"]
    sparkplug = bridge["properties"]["sinks"]["properties"]["mqtt"]["properties"]["sparkplug"]
    assert "oldSelf" in sparkplug["x-kubernetes-validations"][0]["rule"]


def test_names_columns_and_status() -> None:
    document = yaml.safe_load((CRDS / "virtualplcs.shopfloor.io.yaml").read_text())
    names = document["spec"]["names"]
    assert names["shortNames"] == ["vplc"] and names["categories"] == ["shopfloor"]
    version = document["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [column["name"] for column in version["additionalPrinterColumns"]] == [
        "Phase",
        "Node",
        "Revision",
        "Ready",
        "Age",
    ]
    bridge = yaml.safe_load((CRDS / "protocolbridges.shopfloor.io.yaml").read_text())
    assert bridge["spec"]["names"]["shortNames"] == ["pbridge"]
