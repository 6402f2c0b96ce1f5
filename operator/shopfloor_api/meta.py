"""The part of Kubernetes object metadata that manifests carry."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from shopfloor_api.common import ShopfloorModel

# Children are named `<name>-runtime`, `<name>-<suffix>` and the Service `<name>` (a DNS-1035 label).
MAX_NAME_LENGTH = 52
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


class ObjectMeta(ShopfloorModel):
    """Name, namespace, labels and annotations; server-set fields (uid, resourceVersion, ...) are accepted and kept."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=NAME_PATTERN,
        description="Lowercase letters, digits and '-', starting with a letter, at most 52 characters.",
    )
    namespace: str = Field("default", max_length=63, description="Namespace.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    uid: str = Field("", description="Set by the API server.")
    generation: int = Field(0, description="Set by the API server; increases with every spec change.")
