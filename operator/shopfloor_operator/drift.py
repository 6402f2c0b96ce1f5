"""Pure drift comparison: is the live object what we would build now, and if not, what is the first difference?

The reason becomes the replacement reason in Events, so it names a field path and both values.
"""

from __future__ import annotations

from typing import Any


def first_difference(desired: Any, actual: Any, path: str = "") -> str | None:
    """The first path where `actual` differs from `desired`, ignoring what only `actual` has (server defaults)."""
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return f"{path or '<root>'}: expected an object, found {_short(actual)}"
        for key, value in desired.items():
            difference = first_difference(value, actual.get(key), f"{path}.{key}" if path else key)
            if difference:
                return difference
        return None
    if isinstance(desired, list):
        # Admission appends to lists (the token volume and its mount, default tolerations): extra trailing items
        # on the live side are the server's; a removed item still changes the hash, reported as a last resort.
        if not isinstance(actual, list) or len(actual) < len(desired):
            return f"{path}: {_short(actual)} -> {_short(desired)}"
        for index, (want, have) in enumerate(zip(desired, actual[: len(desired)], strict=True)):
            difference = first_difference(want, have, f"{path}[{index}]")
            if difference:
                return difference
        return None
    if desired != actual and not (desired in ("", False, 0) and actual is None):
        return f"{path}: {_short(actual)} -> {_short(desired)}"
    return None


def pod_drift(desired_pod: dict[str, Any], actual_pod: dict[str, Any], hash_annotation: str) -> str | None:
    """None when the live pod matches; otherwise the first difference of its spec (or the hash, when the pod was
    built by another operator version and no field differs)."""
    desired_hash = desired_pod["metadata"]["annotations"][hash_annotation]
    actual_hash = (actual_pod.get("metadata", {}).get("annotations") or {}).get(hash_annotation)
    if desired_hash == actual_hash:
        return None
    desired_annotations = {k: v for k, v in desired_pod["metadata"]["annotations"].items() if k != hash_annotation}
    actual_annotations = (actual_pod.get("metadata") or {}).get("annotations") or {}
    return (
        first_difference(desired_pod["spec"], actual_pod.get("spec", {}), "spec")
        or first_difference(desired_annotations, actual_annotations, "metadata.annotations")
        or f"metadata.annotations.{hash_annotation}: {actual_hash} -> {desired_hash}"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
