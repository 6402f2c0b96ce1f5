"""A real Mosquitto broker (Debian's /usr/sbin/mosquitto) on a free loopback port, for the site, tests and
benchmarks.

    with Mosquitto(tmp_path, tls=True, users={"bridge": "secret"}) as broker:
        broker.port, broker.ca_file          # connect here; trust this CA
        broker.stop(kill=True); broker.start()   # an outage: same port, same config

TLS uses a throwaway CA and a server certificate for 127.0.0.1/localhost. With `persistence=True` the broker keeps
persistent sessions across a restart (saved on every change), so a subscriber with a persistent session misses
nothing while the broker is away. The broker dies with the process that started it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from shopfloor_localsite.pki import loopback_server_pki
from shopfloor_localsite.processes import ManagedProcess, free_port

MOSQUITTO = Path("/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")


class Mosquitto:
    """One broker process; start/stop may be repeated and keep the port, the config and any persisted sessions."""

    def __init__(
        self,
        directory: Path,
        *,
        tls: bool = False,
        users: dict[str, str] | None = None,
        persistence: bool = False,
        port: int | None = None,
    ) -> None:
        if not MOSQUITTO.exists():
            raise RuntimeError(f"{MOSQUITTO} is missing: install Debian's mosquitto package (make system-deps)")
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.port = port or free_port()
        self.ca_file: Path | None = None
        self.config_file = directory / "mosquitto.conf"
        self.log_file = directory / "mosquitto.log"
        self._process = ManagedProcess("mosquitto", [str(MOSQUITTO), "-c", str(self.config_file)], self.log_file)
        lines = [f"listener {self.port} 127.0.0.1", "log_dest stderr", "log_type error", "log_type warning"]
        if os.geteuid() == 0:
            # Started as root, mosquitto would switch to its own user, which cannot read a private temp directory.
            lines.append("user root")
        if users:
            password_file = directory / "passwords"
            password_file.write_text("")
            for user, password in users.items():
                subprocess.run([str(MOSQUITTO_PASSWD), "-b", str(password_file), user, password], check=True)
            password_file.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            self.ca_file, cert_file, key_file = loopback_server_pki(directory / "pki", "shopfloor test broker")
            lines += [f"cafile {self.ca_file}", f"certfile {cert_file}", f"keyfile {key_file}"]
        if persistence:
            lines += [
                "persistence true",
                f"persistence_location {directory}/",
                "autosave_on_changes true",
                "autosave_interval 1",
            ]
        else:
            lines.append("persistence false")
        # Large enough that the broker never drops QoS 1 messages queued for a slow subscriber.
        lines += ["max_queued_messages 1000000", "max_inflight_messages 0"]
        self.config_file.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process.running()

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self._process.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._process.running():
                raise RuntimeError(f"mosquitto exited: {self._process.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout}s")

    def stop(self, *, kill: bool = False) -> None:
        """Stops the broker: SIGTERM (a clean shutdown) or, with kill=True, SIGKILL (a crash)."""
        process = self._process.process
        if kill and process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        self._process.stop()

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
