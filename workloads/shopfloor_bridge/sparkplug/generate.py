"""Regenerates sparkplug_payload_pb2.py from sparkplug_payload.proto with grpcio-tools (a dev dependency).

Run from anywhere: `python -m shopfloor_bridge.sparkplug.generate`. The generated module is checked in so the bridge
needs only the protobuf runtime.
"""

import sys
from pathlib import Path

from grpc_tools import protoc


def main() -> int:
    here = Path(__file__).resolve().parent
    return protoc.main(
        ["protoc", f"--proto_path={here}", f"--python_out={here}", f"--pyi_out={here}", "sparkplug_payload.proto"]
    )


if __name__ == "__main__":
    sys.exit(main())
