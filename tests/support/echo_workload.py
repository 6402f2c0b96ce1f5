"""A stand-in container process for testing the site runner: it listens where the site maps container port 8080
and answers every request with its environment and the identity its kubeconfig gives it."""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

from kubernetes import client, config


def mapped_port(container_port: int) -> int:
    pairs = dict(item.split("=") for item in os.environ["SHOPFLOOR_PORT_MAP"].split(","))
    return int(pairs[str(container_port)])


def identity() -> str:
    api = config.new_client_from_config(os.environ["SHOPFLOOR_KUBECONFIG"])
    review = client.AuthenticationV1Api(api).create_self_subject_review({"apiVersion": "authentication.k8s.io/v1"})
    return str(review.status.user_info.username)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"env": dict(os.environ), "identity": identity()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    HTTPServer((os.environ["SHOPFLOOR_BIND_HOST"], mapped_port(8080)), Handler).serve_forever()
