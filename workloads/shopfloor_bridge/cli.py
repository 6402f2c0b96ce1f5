"""`shopfloor-bridge run FILE`: runs the protocol bridge described by a ProtocolBridge manifest.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 1 for an invalid manifest or settings (one line per problem,
naming the field), 2 when the bridge cannot start (e.g. the OPC UA server port is taken).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from shopfloor_api import ManifestError, ProtocolBridge, load_manifest
from shopfloor_bridge.bridge import Bridge
from shopfloor_bridge.config import ConfigError, SecretFiles, from_manifest
from shopfloor_bridge.http import HealthServer
from shopfloor_inpod.logs import add_log_level_argument, configure_logging, log_level

log = logging.getLogger("shopfloor_bridge")


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shopfloor-bridge", description=__doc__.splitlines()[0] if __doc__ else "")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the bridge of a ProtocolBridge manifest")
    run.add_argument("file", type=Path, nargs="?", help="ProtocolBridge manifest (YAML)")
    run.add_argument(
        "--in-pod",
        action="store_true",
        help="in a pod: manifest from the ConfigMap <bridge>-runtime, state through the Lease <bridge> "
        "(settings from SHOPFLOOR_* environment variables)",
    )
    run.add_argument(
        "--state-dir",
        type=Path,
        default=os.environ.get("SHOPFLOOR_BRIDGE_STATE_DIR"),
        help="store-and-forward buffer directory (default: $SHOPFLOOR_BRIDGE_STATE_DIR or ./.shopfloor-bridge/NAME)",
    )
    run.add_argument(
        "--listen",
        type=_listen,
        default=_listen(os.environ.get("SHOPFLOOR_BRIDGE_LISTEN", "0.0.0.0:8080")),
        help="HOST:PORT for /metrics, /healthz, /readyz (default 0.0.0.0:8080; port 0 picks a free one)",
    )
    run.add_argument("--secrets-dir", type=Path, help="mounted-Secret layout: DIR/<secret>/<key>")
    add_log_level_argument(run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        configure_logging(log_level(args.log_level))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.in_pod:
        return _run_in_pod()
    if args.file is None:
        print("run: FILE is required (or --in-pod in a pod)", file=sys.stderr)
        return 1
    try:
        manifest = load_manifest(args.file)
    except ManifestError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    if not isinstance(manifest, ProtocolBridge):
        print(f"{args.file}: kind: expected ProtocolBridge, got {manifest.kind}", file=sys.stderr)
        return 1
    state_dir = args.state_dir or Path(".shopfloor-bridge") / manifest.metadata.name
    try:
        config = from_manifest(manifest, state_dir, SecretFiles(args.secrets_dir) if args.secrets_dir else None)
        bridge = Bridge(config)
    except (ConfigError, ValueError) as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 1
    return asyncio.run(_serve(bridge, *args.listen))


def _run_in_pod() -> int:
    from shopfloor_bridge.pod import run_pod
    from shopfloor_inpod.settings import SettingsError

    async def in_pod() -> int:
        return await run_pod(_stop_on_signals())

    try:
        return asyncio.run(in_pod())
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 1


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _serve(bridge: Bridge, host: str, port: int) -> int:
    stop = _stop_on_signals()
    http = HealthServer(bridge.health, bridge.metrics, host, port)
    try:
        await http.start()
        log.info("serving /metrics, /healthz and /readyz on %s:%d", host, http.port)
        await bridge.start()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await http.stop()
        return 2
    log.info("bridge %s running", bridge.config.name)
    await stop.wait()
    log.info("stopping")
    await bridge.stop()
    await http.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
