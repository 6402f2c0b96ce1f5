"""`shopfloor-localsite up|down|status`: the local control plane as a background service.

`up` starts a detached supervisor that owns the control plane and writes `<dir>/kubeconfig` once the
nodes are Ready; `down` asks it to stop (SIGTERM) and waits until every process is gone.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from shopfloor_localsite.build import BuildError, ensure_binaries
from shopfloor_localsite.controlplane import ControlPlaneOptions, LocalControlPlane
from shopfloor_localsite.nodes import default_nodes
from shopfloor_localsite.realnode_config import real_node_specs

READY_MARKER = "ready"


def _pid_file(directory: Path) -> Path:
    return directory / "supervisor.pid"


def _read_pid(directory: Path) -> int | None:
    try:
        pid = int(_pid_file(directory).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def serve(directory: Path, realtime_nodes: int, general_nodes: int, real_nodes: int) -> int:
    """Run the control plane in the foreground until SIGTERM/SIGINT."""
    directory.mkdir(parents=True, exist_ok=True)
    stop_requested = False

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    options = ControlPlaneOptions(
        nodes=default_nodes(realtime_nodes, general_nodes), real_nodes=real_node_specs(real_nodes)
    )
    plane = LocalControlPlane(options)
    try:
        plane.start()
        kubeconfig = directory / "kubeconfig"
        kubeconfig.write_text(plane.kubeconfig.read_text())
        kubeconfig.chmod(0o600)
        (directory / READY_MARKER).write_text(f"{plane.server}\n{plane.startup_seconds:.1f}\n")
        while not stop_requested:
            for proc in plane.processes:
                if not proc.running():
                    print(f"{proc.name} exited unexpectedly:\n{proc.log_tail()}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        plane.stop()
        for name in (READY_MARKER, "kubeconfig", _pid_file(directory).name):
            (directory / name).unlink(missing_ok=True)


def up(directory: Path, realtime_nodes: int, general_nodes: int, real_nodes: int, timeout: float = 1800) -> int:
    if _read_pid(directory):
        print(f"already running; kubeconfig: {directory / 'kubeconfig'}")
        return 0
    try:
        ensure_binaries()
    except BuildError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    directory.mkdir(parents=True, exist_ok=True)
    (directory / READY_MARKER).unlink(missing_ok=True)
    log_path = directory / "control-plane.log"
    with log_path.open("w") as log:
        supervisor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shopfloor_localsite.cli",
                "serve",
                "--dir",
                str(directory),
                "--realtime-nodes",
                str(realtime_nodes),
                "--general-nodes",
                str(general_nodes),
                "--real-nodes",
                str(real_nodes),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _pid_file(directory).write_text(f"{supervisor.pid}\n")
    deadline = time.monotonic() + timeout
    while not (directory / READY_MARKER).exists():
        if supervisor.poll() is not None or time.monotonic() > deadline:
            print(f"control plane failed to start; log {log_path}:\n{log_path.read_text()[-4000:]}", file=sys.stderr)
            if supervisor.poll() is None:
                supervisor.terminate()
            return 1
        time.sleep(0.2)
    server, seconds = (directory / READY_MARKER).read_text().split()
    print(f"control plane up in {seconds}s at {server}")
    print(f"kubeconfig: {directory / 'kubeconfig'}   (kubectl --kubeconfig {directory / 'kubeconfig'} get nodes)")
    return 0


def down(directory: Path, timeout: float = 60) -> int:
    pid = _read_pid(directory)
    if pid is None:
        print("control plane is not running")
        _pid_file(directory).unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _read_pid(directory) == pid:
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    _pid_file(directory).unlink(missing_ok=True)
    print("control plane stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shopfloor-localsite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "serve"):
        command = sub.add_parser(name)
        command.add_argument("--dir", type=Path, default=Path(".cluster"))
        command.add_argument("--realtime-nodes", type=int, default=2)
        command.add_argument("--general-nodes", type=int, default=2)
        command.add_argument("--real-nodes", type=int, default=0, help="real kubelets (real-rt-1..N); needs root")
    sub.add_parser("down").add_argument("--dir", type=Path, default=Path(".cluster"))
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.dir, args.realtime_nodes, args.general_nodes, args.real_nodes)
    if args.command == "serve":
        return serve(args.dir, args.realtime_nodes, args.general_nodes, args.real_nodes)
    return down(args.dir)


if __name__ == "__main__":
    sys.exit(main())
