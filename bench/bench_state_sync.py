"""Hot standby state sync: what one state image costs, next to one scan of the same program in the same run.

For generated programs of about 100, 1,000 and 10,000 variables (INT/REAL/BOOL scalars, INT arrays, TON and CTU
instances; an array element and an FB member count as one variable each), per image:

- capture (µs, on the thread that scans: `Instance.capture_state`) and restore (µs, `Instance.restore_state`);
- encoded size (bytes);
- a loopback TCP send + 1-byte ack round trip of one image to another process (127.0.0.1 only);
- each as a ratio to one scan, and the sync interval each size affords at a 10 ms cycle: the shortest multiple of
  the cycle at which capturing costs the scan thread at most 10 % of its time and the round trip fits in the
  interval.

Run: .venv/bin/python bench/bench_state_sync.py (QUICK=1 shortens every phase).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import socket
import statistics
import struct
import time
from collections.abc import Callable

from shopfloor_st import Instance, compile_source
from shopfloor_st.state_image import layout_for

QUICK = bool(os.environ.get("QUICK"))
SIZES = (100, 1_000, 10_000)
CYCLE_NS = 10_000_000
CAPTURE_BUDGET = 0.10  # of the scan thread's time
ARRAY_LENGTH = 50
TON_VALUES, CTU_VALUES = 5, 6
NOW = 10**12  # IN PT Q ET _start; CU R PV Q CV _prev


def generated_program(variables: int) -> str:
    """About `variables` variables: 40 % scalars, 40 % in INT arrays, 20 % in TON/CTU instances."""
    scalars = variables * 4 // 10
    arrays = max(1, variables * 4 // 10 // ARRAY_LENGTH)
    fbs = max(2, variables * 2 // 10 // ((TON_VALUES + CTU_VALUES) // 2))
    decls, body = [], []
    for k in range(scalars):
        kind = ("INT", "REAL", "BOOL")[k % 3]
        decls.append(f"  s{k} : {kind};")
        if k % 10 == 0:  # a tenth of the scalars change every scan, as in a real program
            body.append(
                {"INT": f"s{k} := (s{k} + 1) MOD 1000;", "REAL": f"s{k} := s{k} + 0.5;"}.get(kind, f"s{k} := NOT s{k};")
            )
    for k in range(arrays):
        decls.append(f"  a{k} : ARRAY[1..{ARRAY_LENGTH}] OF INT;")
        body.append(f"a{k}[(n MOD {ARRAY_LENGTH}) + 1] := n MOD 1000;")
    for k in range(fbs // 2):
        decls.append(f"  t{k} : TON; c{k} : CTU;")
        body.append(f"t{k}(IN := TRUE, PT := T#{100 + k}ms); c{k}(CU := t{k}.Q, PV := 10);")
    head = ["PROGRAM Main", "VAR", "  n : INT;", *decls, "END_VAR", "n := (n + 1) MOD 30000;"]
    return "\n".join([*head, *body, "END_PROGRAM", ""])


def variable_count(instance: Instance) -> int:
    """Values in the state: leaves of the walk, with every array element counted."""
    layout = layout_for(instance.program)
    values = layout.capture_values(instance._state, instance._globals, 0)
    return sum(len(v) if isinstance(v, list) else 1 for v in values)


def median_us(action: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        action()
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1000


def ack_server(listener: socket.socket) -> None:
    """The other side of the link: read length-prefixed images, answer each with one byte."""
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while True:
            header = conn.recv(4, socket.MSG_WAITALL)
            if len(header) < 4:
                return
            (length,) = struct.unpack("<I", header)
            remaining = length
            while remaining:
                chunk = conn.recv(min(remaining, 1 << 20))
                if not chunk:
                    return
                remaining -= len(chunk)
            conn.sendall(b"\x01")


def round_trip_us(images: list[bytes], repeats: int) -> list[float]:
    """Median send + ack time per image, to a server in another process."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    server = multiprocessing.Process(target=ack_server, args=(listener,), daemon=True)
    server.start()
    client = socket.create_connection(listener.getsockname())
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    results = []
    try:
        for image in images:
            frame = struct.pack("<I", len(image)) + image

            def send_one(frame: bytes = frame) -> None:
                client.sendall(frame)
                client.recv(1, socket.MSG_WAITALL)

            for _ in range(5):  # warm the connection up
                send_one()
            results.append(median_us(send_one, repeats))
    finally:
        client.close()
        server.join(5)
        listener.close()
    return results


def affordable_interval_ms(capture_us: float, scan_us: float, trip_us: float) -> str:
    if (scan_us + capture_us) * 1000 > CYCLE_NS:
        return "none (scan + capture exceed the cycle)"
    cycles = max(1, math.ceil(capture_us * 1000 / (CAPTURE_BUDGET * CYCLE_NS)), math.ceil(trip_us * 1000 / CYCLE_NS))
    return f"{cycles * CYCLE_NS / 1e6:.0f} ms" + (" (every cycle)" if cycles == 1 else "")


def main() -> None:
    repeats = 20 if QUICK else 200
    print(f"State sync benchmarks on {os.cpu_count()} cores{' (QUICK)' if QUICK else ''}", flush=True)
    rows = []
    for size in SIZES:
        program = compile_source(generated_program(size), f"sync{size}.st")
        primary, standby = program.instantiate(), program.instantiate()
        scans = iter(range(1, 10**9))
        for k in range(50):  # timers running, counters counting
            primary.scan(k * CYCLE_NS)
        scan_us = median_us(lambda p=primary, s=scans: p.scan(next(s) * CYCLE_NS), repeats)  # type: ignore[misc]
        capture_us = median_us(lambda p=primary: p.capture_state(NOW), repeats)  # type: ignore[misc]
        image = primary.capture_state(NOW)
        restore_us = median_us(lambda s=standby, i=image: s.restore_state(i, NOW + 123), repeats)  # type: ignore[misc]
        assert standby.snapshot() == primary.snapshot()
        rows.append((variable_count(primary), scan_us, capture_us, restore_us, image))
        print(f"  measured {size} ...", flush=True)
    trips = round_trip_us([row[4] for row in rows], repeats)
    print()
    header = (
        f"{'variables':>9} | {'scan µs':>8} | {'capture µs':>10} | {'x scan':>6} | {'restore µs':>10} | "
        f"{'x scan':>6} | {'bytes':>7} | {'TCP+ack µs':>10} | {'x scan':>6} | sync interval at 10 ms"
    )
    print(header)
    print("-" * len(header))
    for (count, scan_us, capture_us, restore_us, image), trip_us in zip(rows, trips, strict=True):
        print(
            f"{count:>9} | {scan_us:>8.1f} | {capture_us:>10.1f} | {capture_us / scan_us:>6.2f} | "
            f"{restore_us:>10.1f} | {restore_us / scan_us:>6.2f} | {len(image):>7} | {trip_us:>10.1f} | "
            f"{trip_us / scan_us:>6.2f} | {affordable_interval_ms(capture_us, scan_us, trip_us)}"
        )


if __name__ == "__main__":
    main()
