"""A stand-in container process for the fault tests: it listens where the site maps container port 8080 and answers

- `GET /state`: its pid and pod address, without asking anyone;
- `GET /api`: whether the API server answers it within a second, through its kubeconfig (its node's uplink);
- `GET /central?name=N&port=P`: whether a central name (e.g. the witness) answers, through its endpoint map;
- `GET /write?name=N&port=P`: writes coil 0 of a field device, from its pod address (`MY_POD_IP`).

Run as a script (`python fault_workload.py`); SIGTERM ends it with the default action.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubernetes import client, config
from pymodbus.client import ModbusTcpClient

from shopfloor_inpod.endpoints import resolve


def mapped_port(container_port: int) -> int:
    pairs = dict(item.split("=") for item in os.environ["SHOPFLOOR_PORT_MAP"].split(","))
    return int(pairs[str(container_port)])


def api_answers() -> dict[str, Any]:
    configuration = client.Configuration()
    config.load_kube_config(config_file=os.environ["SHOPFLOOR_KUBECONFIG"], client_configuration=configuration)
    configuration.retries = False
    try:
        with client.ApiClient(configuration) as api:
            review = client.AuthenticationV1Api(api).create_self_subject_review(
                {"apiVersion": "authentication.k8s.io/v1"}, _request_timeout=1
            )
        return {"ok": True, "user": review.status.user_info.username, "server": configuration.host}
    except Exception as error:
        return {"ok": False, "error": type(error).__name__, "server": configuration.host}


def central_answers(name: str, port: int) -> dict[str, Any]:
    host, real_port = resolve(name, port)
    try:
        with socket.create_connection((host, real_port), timeout=1) as sock:
            sock.sendall(b"ping")
            sock.settimeout(1)
            return {"ok": sock.recv(4) == b"ping", "via": [host, real_port]}
    except OSError as error:
        return {"ok": False, "error": type(error).__name__, "via": [host, real_port]}


def write_coil(name: str, port: int) -> dict[str, Any]:
    host, real_port = resolve(name, port)
    modbus = ModbusTcpClient(host, port=real_port, timeout=2, retries=0, source_address=(os.environ["MY_POD_IP"], 0))
    try:
        if not modbus.connect():
            return {"ok": False, "error": "connect"}
        response = modbus.write_coil(0, True, device_id=1)
        return {"ok": not response.isError()}
    finally:
        modbus.close()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/state":
            body: dict[str, Any] = {"pid": os.getpid(), "pod_ip": os.environ.get("MY_POD_IP", "")}
        elif url.path == "/api":
            body = api_answers()
        elif url.path == "/central":
            body = central_answers(query["name"], int(query["port"]))
        elif url.path == "/write":
            body = write_coil(query["name"], int(query["port"]))
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


if __name__ == "__main__":
    ThreadingHTTPServer((os.environ["SHOPFLOOR_BIND_HOST"], mapped_port(8080)), Handler).serve_forever()
