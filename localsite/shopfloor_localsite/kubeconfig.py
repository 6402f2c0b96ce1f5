"""Kubeconfig files for the site's clients: the admin (client certificate), the operator and each workload
(service-account tokens)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def kubeconfig_document(
    server: str, ca_data: str, user: str, credentials: dict[str, str], namespace: str | None = None
) -> dict[str, Any]:
    """One cluster, one user, one context. `credentials` is the user entry: a token or client certificate data."""
    context: dict[str, str] = {"cluster": "shopfloor-local", "user": user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "shopfloor-local", "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "shopfloor-local", "context": context}],
        "current-context": "shopfloor-local",
    }


def write_kubeconfig_file(path: Path, document: dict[str, Any]) -> Path:
    """Written readable by the owner only: it holds credentials."""
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path
