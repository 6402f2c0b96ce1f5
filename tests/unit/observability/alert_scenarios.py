"""Series that must make each alert fire (and healthy series that must not), in promtool's test format.

Series notation: 'a+bxN' is a, a+b, ... N more samples, one per 15 s scrape; 'vxN' repeats v.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCRAPE = "15s"
PLC = {"namespace": "line-1", "plc": "tank-1", "pod": "tank-1-3f9a2", "job": "shopfloor-vplc", "node": "edge-rt-1"}
BRIDGE = {"namespace": "line-1", "bridge": "line-1-bridge", "pod": "line-1-bridge-8c1d0", "job": "shopfloor-bridge"}
OPERATOR = {"namespace": "shopfloor-system", "pod": "shopfloor-operator-5d8f2", "job": "shopfloor-operator"}


@dataclass(frozen=True)
class Scenario:
    alert: str
    series: dict[str, str]  # series in PromQL notation -> values
    at: str  # evaluation time
    fires: list[dict[str, str]] = field(default_factory=list)  # expected alert labels (severity included)
    summary: str = ""  # expected rendered summary of the first alert, when given


def selector(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


def keep(labels: dict[str, str], *names: str) -> dict[str, str]:
    return {name: labels[name] for name in names}


def _buckets(name: str, labels: dict[str, str], per_step: dict[str, int], steps: int) -> dict[str, str]:
    return {selector(f"{name}_bucket", {**labels, "le": le}): f"0+{count}x{steps}" for le, count in per_step.items()}


FIRING = [
    Scenario(
        "ShopfloorPLCFaulted",
        {
            selector("shopfloor_vplc_state", {**PLC, "state": "Faulted"}): "0 0 1x10",
            selector("shopfloor_vplc_state", {**PLC, "state": "Running"}): "1 1 0x10",
        },
        "2m",
        [{**keep(PLC, "namespace", "plc"), "severity": "critical"}],
        "PLC line-1/tank-1 is faulted and holds its safe state",
    ),
    Scenario(
        "ShopfloorVPLCFenced",
        {selector("shopfloor_vplc_fenced", PLC): "0 0 1x10"},
        "2m",
        [{**keep(PLC, "namespace", "plc", "node"), "severity": "critical"}],
    ),
    Scenario(
        "ShopfloorPLCNotReporting",
        {selector("up", PLC): "1 1 0x20"},
        "4m",
        [{**PLC, "severity": "critical"}],
    ),
    Scenario(
        "ShopfloorScanOverruns",
        {
            selector("shopfloor_vplc_scans_total", PLC): "0+1500x60",
            selector("shopfloor_vplc_overruns_total", PLC): "0+15x60",
        },
        "12m",
        [{**keep(PLC, "namespace", "plc"), "severity": "warning"}],
    ),
    Scenario(
        "ShopfloorWakeupLatenessHigh",
        {  # a 10 ms cycle (100 scans/s) with a p99 lateness of about 2 ms: over 10 % of the cycle
            selector("shopfloor_vplc_scans_total", PLC): "0+1500x80",
            **_buckets(
                "shopfloor_vplc_wakeup_lateness_seconds",
                PLC,
                {"0.0005": 1400, "0.001": 1450, "0.0025": 1500, "+Inf": 1500},
                80,
            ),
        },
        "17m",
        [{**keep(PLC, "namespace", "plc"), "severity": "warning"}],
    ),
    Scenario(
        "ShopfloorRealtimeNotGranted",
        {
            selector("shopfloor_vplc_realtime_granted", PLC): "0x10",
            selector("shopfloor_vplc_scans_total", PLC): "0+1500x10",
        },
        "2m",
        [{**keep(PLC, "namespace", "plc", "node"), "severity": "warning"}],
    ),
    Scenario(
        "ShopfloorFieldDeviceDown",
        {selector("shopfloor_vplc_field_device_up", {**PLC, "device": "tank-io"}): "1 1 0x10"},
        "2m",
        [{**keep(PLC, "namespace", "plc"), "device": "tank-io", "severity": "critical"}],
    ),
    Scenario(
        "ShopfloorModbusServerExceptions",
        {
            selector("shopfloor_vplc_modbus_requests_total", {**PLC, "function": "3", "result": "ok"}): "0+100x80",
            selector("shopfloor_vplc_modbus_requests_total", {**PLC, "function": "3", "result": "exception_2"}): (
                "0+10x80"
            ),
        },
        "16m",
        [{**keep(PLC, "namespace", "plc"), "severity": "info"}],
    ),
    Scenario(
        "ShopfloorBridgeNotReporting",
        {selector("up", BRIDGE): "1 1 0x20"},
        "4m",
        [{**BRIDGE, "severity": "warning"}],
    ),
    Scenario(
        "ShopfloorBridgeBufferFilling",
        {selector("shopfloor_bridge_buffer_bytes", BRIDGE): "60000000x30"},
        "6m",
        [{**keep(BRIDGE, "namespace", "bridge"), "severity": "warning"}],
    ),
    Scenario(
        "ShopfloorBridgeDroppingMessages",
        {selector("shopfloor_bridge_buffer_dropped_messages_total", BRIDGE): "0 0 5 5 5"},
        "1m",
        [{**keep(BRIDGE, "namespace", "bridge"), "severity": "critical"}],
    ),
    Scenario(
        "ShopfloorBridgePollFailures",
        {
            selector("shopfloor_bridge_polls_total", {**BRIDGE, "device": "mixer", "result": "ok"}): "0+10x60",
            selector("shopfloor_bridge_polls_total", {**BRIDGE, "device": "mixer", "result": "timeout"}): "0+2x60",
        },
        "12m",
        [{**keep(BRIDGE, "namespace", "bridge"), "device": "mixer", "severity": "warning"}],
    ),
    Scenario(
        "ShopfloorBridgeSourceDisconnected",
        {selector("shopfloor_bridge_source_connected", {**BRIDGE, "device": "mixer"}): "0x20"},
        "3m",
        [{**keep(BRIDGE, "namespace", "bridge"), "device": "mixer", "severity": "warning"}],
    ),
    Scenario(
        "ShopfloorOperatorDown",
        {selector("up", {**OPERATOR, "job": "something-else"}): "1x40"},
        "6m",
        [{"severity": "critical"}],  # absent() of an expression carries no labels
    ),
    Scenario(
        "ShopfloorPLCsFaulted",
        {
            selector("shopfloor_objects", {**OPERATOR, "controller": "virtualplc", "phase": "Faulted"}): "1x10",
            selector("shopfloor_objects", {**OPERATOR, "controller": "protocolbridge", "phase": "Faulted"}): "1x10",
        },
        "2m",
        [{"namespace": "shopfloor-system", "severity": "warning"}],
    ),
    Scenario(
        "ShopfloorPLCsNotReady",
        {selector("shopfloor_objects", {**OPERATOR, "controller": "virtualplc", "phase": "Starting"}): "1x60"},
        "11m",
        [{"namespace": "shopfloor-system", "severity": "warning"}],
    ),
    Scenario(
        "ShopfloorProgramRolledBack",
        {selector("shopfloor_program_rollbacks_total", OPERATOR): "0 0 1 1 1"},
        "1m",
        [{"namespace": "shopfloor-system", "severity": "warning"}],
    ),
    Scenario(
        "ShopfloorPLCReplaced",
        {selector("shopfloor_pod_replacements_total", {**OPERATOR, "controller": "virtualplc"}): "0 0 1 1 1"},
        "1m",
        [{"namespace": "shopfloor-system", "controller": "virtualplc", "severity": "warning"}],
    ),
    Scenario(
        "ShopfloorReconcileErrors",
        {
            selector("shopfloor_reconcile_total", {**OPERATOR, "controller": "virtualplc", "result": "error"}): (
                "0+1x120"
            ),
        },
        "20m",
        [{"namespace": "shopfloor-system", "controller": "virtualplc", "severity": "warning"}],
    ),
]

# A healthy site over 30 minutes: no alert may fire.
HEALTHY = {
    selector("up", PLC): "1x120",
    selector("up", BRIDGE): "1x120",
    selector("up", OPERATOR): "1x120",
    selector("shopfloor_vplc_state", {**PLC, "state": "Running"}): "1x120",
    selector("shopfloor_vplc_state", {**PLC, "state": "Faulted"}): "0x120",
    selector("shopfloor_vplc_scans_total", PLC): "0+1500x120",
    selector("shopfloor_vplc_overruns_total", PLC): "0x120",
    selector("shopfloor_vplc_realtime_granted", PLC): "1x120",
    selector("shopfloor_vplc_fenced", PLC): "0x120",
    selector("shopfloor_vplc_field_device_up", {**PLC, "device": "tank-io"}): "1x120",
    selector("shopfloor_vplc_modbus_requests_total", {**PLC, "function": "3", "result": "ok"}): "0+100x120",
    selector("shopfloor_bridge_buffer_bytes", BRIDGE): "0x120",
    selector("shopfloor_bridge_buffer_dropped_messages_total", BRIDGE): "0x120",
    selector("shopfloor_bridge_polls_total", {**BRIDGE, "device": "mixer", "result": "ok"}): "0+10x120",
    selector("shopfloor_bridge_source_connected", {**BRIDGE, "device": "mixer"}): "1x120",
    selector("shopfloor_objects", {**OPERATOR, "controller": "virtualplc", "phase": "Running"}): "3x120",
    selector("shopfloor_program_rollbacks_total", OPERATOR): "2x120",
    selector("shopfloor_pod_replacements_total", {**OPERATOR, "controller": "virtualplc"}): "1x120",
    selector("shopfloor_reconcile_total", {**OPERATOR, "controller": "virtualplc", "result": "success"}): "0+1x120",
    **_buckets("shopfloor_vplc_wakeup_lateness_seconds", PLC, {"0.00005": 1490, "0.0001": 1500, "+Inf": 1500}, 120),
}
# A PLC that asked for nothing, or has not started scanning yet, is not "refused real time".
NOT_STARTED = {
    selector("shopfloor_vplc_realtime_granted", PLC): "0x20",
    selector("shopfloor_vplc_scans_total", PLC): "0x20",
}
# The same lateness on a PLC with a 100 ms cycle (10 scans/s) is within its budget.
SLOW_CYCLE = {
    selector("shopfloor_vplc_scans_total", PLC): "0+150x80",
    **_buckets(
        "shopfloor_vplc_wakeup_lateness_seconds", PLC, {"0.0005": 140, "0.001": 145, "0.0025": 150, "+Inf": 150}, 80
    ),
}
