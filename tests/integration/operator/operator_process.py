"""The operator as its own process (`python -m shopfloor_operator.main`), for tests of restarts, peering and
replicas; each gets its own metrics, liveness and witness ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from .conftest import free_port


class OperatorProcess:
    def __init__(self, kubeconfig: Path, namespace: str, log: Path, **env: str) -> None:
        self.metrics_port = free_port()
        environment = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "SHOPFLOOR_NAMESPACES": namespace,
            "SHOPFLOOR_METRICS_PORT": str(self.metrics_port),
            "SHOPFLOOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{free_port()}/healthz",
            "SHOPFLOOR_WITNESS_PORT": str(free_port()),
            **env,
        }
        self.log = log.open("ab")
        command = [sys.executable, "-m", "shopfloor_operator.main"]
        self.process = subprocess.Popen(command, env=environment, stdout=self.log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
