"""Generate the CustomResourceDefinitions from the pydantic models: `python -m shopfloor_api.crdgen [--check] DIR`.

Kubernetes wants structural schemas: no `$ref`, no `anyOf`, a `type` on every node, no titles. Optional fields become
omitted fields, nested defaults become `{}` so the API server fills them in, and CEL rules come from the models.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema, to_jsonable_python

from shopfloor_api.common import GROUP, NO_CRD_DEFAULT, VERSION
from shopfloor_api.meta import MAX_NAME_LENGTH
from shopfloor_api.protocolbridge import ProtocolBridgeSpec, ProtocolBridgeStatus
from shopfloor_api.virtualplc import VirtualPLCSpec, VirtualPLCStatus

# Lists whose items have a unique key: the API server rejects duplicates and merges them by key.
LIST_MAP_KEYS = {"conditions": "type", "sources": "name", "fieldDevices": "name", "nodes": "name", "tags": "name"}


class _DefaultsIncluded(GenerateJsonSchema):
    """Also emits defaults built by default_factory, which pydantic leaves out."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is None:
            return super().default_schema(schema)
        json_schema = self.generate_inner(schema["schema"])
        value = factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            # The whole default object, not `{}`: the API server checks CEL rules against defaults as written.
            value = value.model_dump(mode="json", exclude_none=True)
        json_schema["default"] = to_jsonable_python(value)
        return json_schema


def _resolve(node: Any, definitions: dict[str, Any]) -> Any:
    """Inline $refs, drop null from Optional, strip titles, recursively."""
    if isinstance(node, list):
        return [_resolve(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        target = dict(definitions[ref.rsplit("/", 1)[-1]])
        # The field's own keys (description, default) win over the referenced model's.
        node = {**target, **node}
        if "x-kubernetes-validations" in target and "x-kubernetes-validations" in node:
            node["x-kubernetes-validations"] = target["x-kubernetes-validations"]
    if "anyOf" in node:
        options = [option for option in node.pop("anyOf") if option.get("type") != "null"]
        if len(options) == 1:
            node = {**_resolve(options[0], definitions), **node}
        else:
            # A scalar of several types (safe-state values): the model checks it.
            node["x-kubernetes-preserve-unknown-fields"] = True
    node.pop("title", None)
    if node.get("additionalProperties") is False:
        node.pop("additionalProperties")  # forbidden in CRDs: the API server prunes unknown fields instead
    if node.get("default", "") is None or node.pop(NO_CRD_DEFAULT, False):
        node.pop("default", None)
    # type and description first, the rest sorted: stable, readable files.
    ordered = {key: node[key] for key in ("type", "description") if key in node}
    ordered |= {key: node[key] for key in sorted(node) if key not in ordered}
    return {key: _resolve(value, definitions) for key, value in ordered.items()}


def _without_defaults(node: Any) -> Any:
    """Status is written by the operator alone: no server-side defaults."""
    if isinstance(node, list):
        return [_without_defaults(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {key: _without_defaults(value) for key, value in node.items() if key != "default"}


def _annotate_lists(node: Any) -> None:
    if not isinstance(node, dict):
        return
    for name, child in node.get("properties", {}).items():
        key = LIST_MAP_KEYS.get(name)
        if key and child.get("type") == "array" and key in child["items"].get("properties", {}):
            child["x-kubernetes-list-type"] = "map"
            child["x-kubernetes-list-map-keys"] = [key]
            child["items"].setdefault("required", [])
            if key not in child["items"]["required"]:
                child["items"]["required"].append(key)
                # A key with a default must still be listed as required for the API server.
        _annotate_lists(child)
    _annotate_lists(node.get("items"))
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        _annotate_lists(additional)


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI v3 structural schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_DefaultsIncluded)
    definitions = raw.pop("$defs", {})
    schema: dict[str, Any] = _resolve(raw, definitions)
    _annotate_lists(schema)
    _check_structural(schema, "")
    return schema


def _check_structural(node: dict[str, Any], path: str) -> None:
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        raise ValueError(f"{path or '<root>'}: schema node without a type")
    if not node.get("description") and path:
        raise ValueError(f"{path}: schema node without a description")
    for name, child in node.get("properties", {}).items():
        _check_structural(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        _check_structural({"description": "value", **node["additionalProperties"]}, f"{path}.*")
    if "items" in node:
        _check_structural({"description": "item", **node["items"]}, f"{path}[]")


def _printer_columns(with_revision: bool) -> list[dict[str, Any]]:
    columns: list[dict[str, Any]] = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Node", "type": "string", "jsonPath": ".status.nodeName"},
    ]
    if with_revision:
        columns.append(
            {"name": "Revision", "type": "string", "jsonPath": ".status.program.activeRevision", "priority": 1}
        )
    columns += [
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return columns


def crd(
    kind: str, plural: str, short_name: str, description: str, spec: type[BaseModel], status: type[BaseModel]
) -> dict[str, Any]:
    """A complete CustomResourceDefinition for one kind."""
    spec_schema = structural_schema(spec)
    status_schema = _without_defaults(structural_schema(status))
    # A new object is served with `status: {observedGeneration: 0}`: tools that judge by observedGeneration
    # (kstatus, hence Flux) see it in progress until the operator has looked, instead of Current at once.
    status_schema["default"] = {}
    status_schema["properties"]["observedGeneration"]["default"] = 0
    root = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "shopfloor.io/v1alpha1"},
            "kind": {"type": "string", "description": kind},
            "metadata": {"type": "object"},  # the API server allows nothing else here
            "spec": {**spec_schema, "description": f"Desired state of the {kind}."},
            "status": {**status_schema, "description": f"Observed state of the {kind}, written by the operator."},
        },
        "x-kubernetes-validations": [
            {
                "rule": f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
                "message": f"metadata.name must be at most {MAX_NAME_LENGTH} characters (children add suffixes)",
            },
            {
                "rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                "message": "metadata.name must start with a letter (it names the workload's Service)",
            },
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short_name],
                "categories": ["shopfloor"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _printer_columns(with_revision=kind == "VirtualPLC"),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for every kind."""
    return {
        f"virtualplcs.{GROUP}.yaml": crd(
            kind="VirtualPLC",
            plural="virtualplcs",
            short_name="vplc",
            description="A virtual PLC: an IEC 61131-3 Structured Text program scanned by the vPLC runtime.",
            spec=VirtualPLCSpec,
            status=VirtualPLCStatus,
        ),
        f"protocolbridges.{GROUP}.yaml": crd(
            kind="ProtocolBridge",
            plural="protocolbridges",
            short_name="pbridge",
            description="A protocol bridge: Modbus TCP and OPC UA sources published to MQTT (Sparkplug B) or OPC UA.",
            spec=ProtocolBridgeSpec,
            status=ProtocolBridgeStatus,
        ),
    }


def render(document: dict[str, Any]) -> str:
    header = "# Generated by `make crds` (python -m shopfloor_api.crdgen) from operator/shopfloor_api: do not edit.\n"
    return header + yaml.safe_dump(document, sort_keys=False, width=120, allow_unicode=True)


def drift(directory: Path) -> list[str]:
    """Unified diffs between the checked-in CRDs and freshly generated ones; empty when they match."""
    diffs = []
    for name, document in all_crds().items():
        path = directory / name
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        wanted = render(document)
        if current != wanted:
            lines = difflib.unified_diff(
                current.splitlines(keepends=True), wanted.splitlines(keepends=True), str(path), f"{path} (generated)"
            )
            diffs.append("".join(lines))
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shopfloor_api.crdgen", description=__doc__)
    parser.add_argument("directory", type=Path, help="where the CRD files live, e.g. crds")
    parser.add_argument("--check", action="store_true", help="exit 1 with a diff when the files are out of date")
    args = parser.parse_args(argv)
    if args.check:
        diffs = drift(args.directory)
        for diff in diffs:
            sys.stdout.write(diff)
        if diffs:
            print("CRDs are out of date: run `make crds` and commit the result", file=sys.stderr)
            return 1
        return 0
    args.directory.mkdir(parents=True, exist_ok=True)
    for name, document in all_crds().items():
        (args.directory / name).write_text(render(document), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
