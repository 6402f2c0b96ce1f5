"""VirtualPLC and ProtocolBridge seen as a `Workload`: ports, image, secrets and placement."""

from __future__ import annotations

from shopfloor_api.protocolbridge import ProtocolBridge
from shopfloor_api.virtualplc import VirtualPLC
from shopfloor_operator.builders.pod import STATE_DIR
from shopfloor_operator.builders.workload import ServicePort, Workload, plc_client_label
from shopfloor_operator.settings import OperatorSettings

MODBUS_SERVICE_PORT = 502
STATE_MARGIN_BYTES = 16 * 2**20


def plc_workload(plc: VirtualPLC, settings: OperatorSettings) -> Workload:
    spec = plc.spec
    ports: list[ServicePort] = []
    client_ports: list[str] = []
    if spec.io.modbus.enabled:
        ports.append(ServicePort("modbus", MODBUS_SERVICE_PORT, spec.io.modbus.port))
        client_ports.append("modbus")
    if spec.io.opcua.enabled:
        ports.append(ServicePort("opcua", spec.io.opcua.port, spec.io.opcua.port))
        client_ports.append("opcua")
    ports.append(ServicePort("http", settings.health_port, settings.health_port))
    secrets = [spec.io.opcua.certificate_secret_ref.name] if spec.io.opcua.certificate_secret_ref else []
    return Workload(
        kind="VirtualPLC",
        name=plc.metadata.name,
        namespace=plc.metadata.namespace,
        uid=plc.metadata.uid,
        component="vplc",
        image=spec.image or settings.vplc_image,
        args=["run", "--in-pod"],
        cpus=spec.resources.cpus,
        memory=spec.resources.memory,
        placement=spec.placement,
        realtime_priority=spec.realtime_priority,
        service_ports=ports,
        client_ports=client_ports,
        allowed_clients=list(spec.allowed_clients),
        secret_names=secrets,
        lease_duration_s=spec.failover.lease_duration.seconds,
        hot_standby=spec.redundancy.timing() if spec.redundancy.hot_standby else None,
    )


def bridge_workload(bridge: ProtocolBridge, settings: OperatorSettings) -> Workload:
    spec = bridge.spec
    ports: list[ServicePort] = []
    client_ports: list[str] = []
    if spec.sinks.opcua.enabled:
        ports.append(ServicePort("opcua", spec.sinks.opcua.port, spec.sinks.opcua.port))
        client_ports.append("opcua")
    ports.append(ServicePort("http", settings.health_port, settings.health_port))
    secrets: list[str] = []
    for source in spec.sources:
        if source.opcua and source.opcua.certificate_secret_ref:
            secrets.append(source.opcua.certificate_secret_ref.name)
    if spec.sinks.mqtt and spec.sinks.mqtt.credentials_secret_ref:
        secrets.append(spec.sinks.mqtt.credentials_secret_ref.name)
    if spec.sinks.opcua.enabled and spec.sinks.opcua.certificate_secret_ref:
        secrets.append(spec.sinks.opcua.certificate_secret_ref.name)
    plcs = sorted({source.modbus.plc_ref.name for source in spec.sources if source.modbus and source.modbus.plc_ref})
    return Workload(
        kind="ProtocolBridge",
        name=bridge.metadata.name,
        namespace=bridge.metadata.namespace,
        uid=bridge.metadata.uid,
        component="bridge",
        image=spec.image or settings.bridge_image,
        args=["run", "--in-pod"],
        cpus=spec.resources.cpus,
        memory=spec.resources.memory,
        placement=spec.placement,
        service_ports=ports,
        client_ports=client_ports,
        secret_names=list(dict.fromkeys(secrets)),
        extra_pod_labels={plc_client_label(name): "true" for name in plcs},
        # Store-and-forward survives broker outages on disk, sized by the spec (plus room for its index).
        extra_env={"SHOPFLOOR_BRIDGE_STATE_DIR": STATE_DIR},
        state_bytes=(spec.sinks.mqtt.buffer.max_bytes.bytes if spec.sinks.mqtt else 0) + STATE_MARGIN_BYTES,
        lease_duration_s=spec.failover.lease_duration.seconds,
    )
