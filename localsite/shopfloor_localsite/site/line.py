"""The example production line (examples/production-line/) on the site: what the demo and the end-to-end tests
apply, and how they know it is up."""

from __future__ import annotations

import base64
import socket
from pathlib import Path

from shopfloor_localsite.pki import opcua_application_certificate
from shopfloor_localsite.site.edgesite import EdgeSite
from shopfloor_localsite.site.probes import SiteProbe

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "production-line"
LINE = "line-1"
PLCS = ("tank-1", "conveyor-1")


def apply_production_line(site: EdgeSite, probe: SiteProbe) -> str:
    """The namespace, tank-1's OPC UA certificate Secret, then every manifest; returns what kubectl said."""
    site.kubectl("apply", "-f", str(EXAMPLES / "00-namespace.yaml"))
    cert, key = opcua_application_certificate("urn:shopfloor:line-1:tank-1", ("localhost", socket.gethostname()))
    probe.core.create_namespaced_secret(
        LINE,
        {
            "metadata": {"name": "tank-1-opcua"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()},
        },
    )
    return site.kubectl("apply", "-f", str(EXAMPLES))


def wait_line_running(probe: SiteProbe, timeout: float = 120) -> None:
    """Both PLCs Running, each with its runtime attached."""
    for name in PLCS:

        def running(plc: str = name) -> bool:
            return probe.status(LINE, plc).get("phase") == "Running" and probe.endpoints(LINE, plc) is not None

        probe.wait(running, timeout, f"VirtualPLC {name} Running with its runtime attached")
