"""`shopfloor-vplc check | simulate | run` (DESIGN.md §3)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from shopfloor_api.common import Duration
from shopfloor_inpod.logs import add_log_level_argument, configure_logging, log_level
from shopfloor_st import CompileError, RuntimeFault, simulate
from shopfloor_vplc.bindings import BindingError
from shopfloor_vplc.file_watch import changed_contents
from shopfloor_vplc.plc_file import (
    PlcFile,
    PlcFileError,
    from_manifest_text,
    is_manifest,
    load_plc_file,
    settings_changed,
)
from shopfloor_vplc.program import compile_program
from shopfloor_vplc.retain import FileRetainStore
from shopfloor_vplc.runtime import PlcRuntime, RuntimeOptions


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`--set NAME=VALUE` pairs; the compiler parses each VALUE by the variable's type."""
    overrides: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set {item}: expected NAME=VALUE")
        overrides[name.strip()] = value.strip()
    return overrides


def print_diagnostics(plc: PlcFile | None, error: CompileError) -> None:
    for diagnostic in error.diagnostics:
        print(plc.locate(diagnostic) if plc else diagnostic, file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    plc: PlcFile | None = None
    try:
        plc = load_plc_file(Path(args.file))
        program = compile_program(plc.source, plc.filename, plc.spec.program.entrypoint)
        if is_manifest(Path(args.file)):
            from shopfloor_vplc import bindings  # the manifest's mappings must fit the program too

            bindings.modbus_bindings(plc.spec, program)
            bindings.device_configs(plc.spec, program)
            bindings.safe_state_variables(plc.spec, program)
    except CompileError as exc:
        print_diagnostics(plc, exc)
        return 1
    except (PlcFileError, BindingError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{args.file}: ok, {program.entrypoint} {program.revision}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    try:
        plc = load_plc_file(Path(args.file))
        cycle_ns = int(Duration(args.cycle_time).seconds * 1e9)
    except (PlcFileError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        overrides = parse_overrides(args.set)
        result = simulate(
            plc.source, plc.filename, args.cycles, cycle_ns, overrides, plc.spec.program.entrypoint or None
        )
    except CompileError as exc:
        print_diagnostics(plc, exc)
        return 1
    except ValueError as exc:
        print(f"{plc.filename}: {exc}", file=sys.stderr)
        return 1
    except RuntimeFault as exc:
        print(f"{plc.filename}: runtime fault: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


async def run_plc(args: argparse.Namespace) -> int:
    path = Path(args.file)
    plc = load_plc_file(path)
    try:
        program = compile_program(plc.source, plc.filename, plc.spec.program.entrypoint)
    except CompileError as exc:
        print_diagnostics(plc, exc)
        return 1
    # In a hidden folder beside FILE, so `kubectl apply -f` on the manifests' folder never meets a checkpoint.
    default_retain = path.parent / ".shopfloor" / f"{plc.name}.retain.json"
    retain_file = Path(args.retain_file) if args.retain_file else default_retain
    options = RuntimeOptions(
        host=args.host or "127.0.0.1",
        modbus_port=args.modbus_port,
        opcua_port=args.opcua_port,
        http_port=args.http_port,
        opcua_cert_dir=Path(args.opcua_cert_dir) if args.opcua_cert_dir else None,
        retain_store=FileRetainStore(retain_file),
        filename=plc.filename,
        state_listeners=[lambda state, revision, fault: print(_state_line(state.value, revision, fault), flush=True)],
    )
    runtime = PlcRuntime(plc.name, plc.spec, program, options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start()
    except (OSError, ValueError):  # a port taken, a bad setting: whatever started is stopped the safe way first
        await runtime.shutdown()
        raise
    print(_serving_line(runtime), flush=True)
    watcher = asyncio.create_task(_follow_file(runtime, path, plc))
    await stop.wait()
    watcher.cancel()
    await runtime.shutdown()
    print("stopped: safe state written", flush=True)
    return 0


def _state_line(state: str, revision: str, fault: str) -> str:
    return f"state {state} {revision}" + (f": {fault}" if fault else "")


def _serving_line(runtime: PlcRuntime) -> str:
    parts = [f"{runtime.name}: running {runtime.engine.program.revision}"]
    if runtime.modbus is not None:
        parts.append(f"modbus {runtime.modbus.host}:{runtime.modbus.port}")
    if runtime.opcua is not None:
        parts.append(f"opcua {runtime.opcua.endpoint}")
    if runtime.http is not None:
        parts.append(f"http {runtime.http.host}:{runtime.http.port}")
    return ", ".join(parts)


async def _follow_file(runtime: PlcRuntime, path: Path, original: PlcFile) -> None:
    async for text in changed_contents(path):
        source, updated = text, original
        if is_manifest(path):
            try:
                updated = from_manifest_text(text, str(path))
            except PlcFileError as exc:
                print(f"online change refused, the running program continues: {exc}", flush=True)
                continue
            if settings_changed(original, updated):
                print("settings outside spec.program changed: they apply at the next restart", flush=True)
            source = updated.source
        outcome = await runtime.apply_source(source, updated.locate if is_manifest(path) else None)
        print(outcome.message(), flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shopfloor-vplc", description="The Shopfloor virtual PLC runtime.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="compile only; errors as FILE:LINE:COL: message")
    check.add_argument("file")
    sim = sub.add_parser("simulate", help="run N scans on virtual time and print the variables as JSON")
    sim.add_argument("file")
    sim.add_argument("--cycles", type=int, required=True)
    sim.add_argument("--cycle-time", default="10ms")
    sim.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    run = sub.add_parser("run", help="run a VirtualPLC manifest (or a bare .st file); online change on file change")
    run.add_argument("file", nargs="?")
    run.add_argument(
        "--in-pod",
        action="store_true",
        help="in a pod: read the program from the ConfigMap <plc>-runtime, report through the Lease <plc> "
        "(settings from SHOPFLOOR_* environment variables)",
    )
    run.add_argument("--host", default=None, help="address the servers listen on (default 127.0.0.1)")
    run.add_argument("--modbus-port", type=int, default=None, help="override spec.io.modbus.port")
    run.add_argument("--opcua-port", type=int, default=None, help="override spec.io.opcua.port")
    run.add_argument("--http-port", type=int, default=8080, help="metrics and health port (default 8080)")
    run.add_argument(
        "--retain-file", default=None, help="retain checkpoint (default: FILE's folder/.shopfloor/NAME.retain.json)"
    )
    run.add_argument("--opcua-cert-dir", default=None, help="directory with tls.crt and tls.key for OPC UA")
    add_log_level_argument(run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("check", "simulate"):  # their results go to stdout: only warnings and errors besides
        configure_logging("WARNING")
        return cmd_check(args) if args.command == "check" else cmd_simulate(args)
    try:
        configure_logging(log_level(args.log_level))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.in_pod:
        from shopfloor_inpod.settings import SettingsError
        from shopfloor_vplc.pod import run_pod

        try:
            return asyncio.run(run_pod())
        except SettingsError as exc:
            print(exc, file=sys.stderr)
            return 1
    if args.file is None:
        print("run: FILE is required (or --in-pod in a pod)", file=sys.stderr)
        return 1
    try:
        return asyncio.run(run_plc(args))
    except (PlcFileError, BindingError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot serve: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
