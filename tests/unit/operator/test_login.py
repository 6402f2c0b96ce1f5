"""kopf's credentials come from the same client configuration as the operator's REST client, in a pod too."""

from __future__ import annotations

import datetime
from pathlib import Path

from kubernetes import client
from kubernetes.config.incluster_config import InClusterConfigLoader

from shopfloor_operator.main import _connection_info


def in_cluster_client(tmp_path: Path, token: str) -> tuple[client.ApiClient, Path, InClusterConfigLoader]:
    token_file, ca_file = tmp_path / "token", tmp_path / "ca.crt"
    token_file.write_text(token)
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n")
    configuration = client.Configuration()
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    loader = InClusterConfigLoader(str(token_file), str(ca_file), environ=environ)
    loader.load_and_set(configuration)
    return client.ApiClient(configuration), token_file, loader


def test_the_in_cluster_token_is_sent_as_one_bearer_token(tmp_path: Path) -> None:
    """The client stores the projected token as `bearer <token>` (lower case): kopf must get the token alone."""
    api, _, _ = in_cluster_client(tmp_path, "first-token")
    info = _connection_info(api)
    assert (info.scheme, info.token, info.server) == ("Bearer", "first-token", "https://10.96.0.1:443")


def test_a_rotated_token_is_read_again_when_kopf_logs_in_again(tmp_path: Path) -> None:
    api, token_file, loader = in_cluster_client(tmp_path, "first-token")
    token_file.write_text("rotated-token")
    # The client re-reads the file once its one-minute refresh period is over; make that now.
    loader.token_expires_at = datetime.datetime.min
    assert _connection_info(api).token == "rotated-token"


def test_a_kubeconfig_token_with_its_scheme_is_unwrapped_too() -> None:
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:6443"
    configuration.api_key = {"authorization": "Bearer from-kubeconfig"}
    info = _connection_info(client.ApiClient(configuration))
    assert (info.scheme, info.token) == ("Bearer", "from-kubeconfig")
