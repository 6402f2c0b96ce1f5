"""A plant device answers a real Modbus client with the process model's values and drives its actuators, and keeps
a record of every write with the writer's connection."""

from __future__ import annotations

import ipaddress
import socket
import time

import kubernetes
import pytest
from pymodbus.client import AsyncModbusTcpClient

from shopfloor_localsite.controlplane import LocalControlPlane, node_pod_cidr
from shopfloor_localsite.plant.plant import Plant
from shopfloor_localsite.plant.write_record import PodAddressBook, overlapping_writes, overlaps, writers_in_order
from tests.support.waiting import async_wait_for, wait_for


async def test_tank_device_closes_the_loop_over_modbus() -> None:
    plant = Plant()
    plant.tank.level = 50.0
    await plant.start()
    device = plant.devices["tank-io"]
    client = AsyncModbusTcpClient(device.host, port=device.port)
    try:
        assert await client.connect()
        level = await client.read_input_registers(0, count=1, device_id=1)
        assert abs(level.registers[0] - 500) <= 5
        await client.write_coil(0, True, device_id=1)
        assert plant.tank.valve_open

        async def level_rose() -> bool:
            reading = await client.read_input_registers(0, count=1, device_id=1)
            return bool(reading.registers[0] >= 520)

        await async_wait_for(level_rose, timeout=10, what="tank level rising with the valve open")
        switches = await client.read_discrete_inputs(0, count=2, device_id=1)
        assert switches.bits[:2] == [False, False]
        unmapped = await client.read_holding_registers(100, count=1, device_id=1)
        assert unmapped.isError()
    finally:
        client.close()
        await plant.stop()


async def test_a_device_that_stops_refuses_connections_and_comes_back_on_the_same_port() -> None:
    plant = Plant()
    await plant.start()
    device = plant.devices["conveyor-io"]
    port = device.port
    await device.stop()
    client = AsyncModbusTcpClient(device.host, port=port, retries=0, timeout=1)
    try:
        assert not await client.connect()
        await device.start()
        assert device.port == port
        assert await client.connect()
        eyes = await client.read_discrete_inputs(0, count=2, device_id=1)
        assert not eyes.isError()
    finally:
        client.close()
        await plant.stop()


async def test_a_device_records_every_write_with_the_writers_connection() -> None:
    plant = Plant()
    await plant.start()
    device = plant.devices["tank-io"]
    # A pod's address on the site: the runtime binds its client sockets to it.
    client = AsyncModbusTcpClient(device.host, port=device.port, source_address=("127.128.7.9", 0))
    try:
        assert await client.connect()
        before_ns, before_wall = time.monotonic_ns(), time.time()
        await client.write_coil(0, True, device_id=1)
        await client.write_coils(0, [False, True, True], device_id=1)
        await client.write_register(3, 1234, device_id=1)
        await client.write_registers(4, [1, 2, 3], device_id=1)
        await client.read_coils(0, count=2, device_id=1)  # reads are not recorded
        writes = device.writes_since(0)
        assert [(w.table, w.function_code, w.address, w.values) for w in writes] == [
            ("coils", 5, 0, (1,)),
            ("coils", 15, 0, (0, 1, 1)),
            ("holdingRegisters", 6, 3, (1234,)),
            ("holdingRegisters", 16, 4, (1, 2, 3)),
        ]
        assert plant.tank.valve_open is False and plant.tank.pump_running is True
        assert {w.peer_host for w in writes} == {"127.128.7.9"}
        assert len({w.peer_port for w in writes}) == 1 and writes[0].peer_port > 0
        assert all(w.device == "tank-io" and w.unit_id == 1 for w in writes)
        times = [w.monotonic_ns for w in writes]
        assert times == sorted(times) and times[0] >= before_ns
        assert before_wall <= writes[0].wall_time <= time.time()
    finally:
        client.close()
        await plant.stop()


async def test_overlapping_writes_are_counted_from_the_devices_own_record() -> None:
    plant = Plant()
    await plant.start()
    device = plant.devices["conveyor-io"]
    old = AsyncModbusTcpClient(device.host, port=device.port, source_address=("127.128.1.5", 0))
    new = AsyncModbusTcpClient(device.host, port=device.port, source_address=("127.128.2.5", 0))
    names = {"127.128.1.5": "line-1/conveyor-1-old", "127.128.2.5": "line-1/conveyor-1-new"}
    try:
        assert await old.connect() and await new.connect()
        for _ in range(3):
            await old.write_coil(0, True, device_id=1)
        await new.write_coil(0, True, device_id=1)
        clean = device.writes_since(0)
        assert writers_in_order(clean, names.__getitem__) == ["line-1/conveyor-1-old", "line-1/conveyor-1-new"]
        assert overlapping_writes(clean, names.__getitem__) == 0, "a clean handover"

        await old.write_coil(0, False, device_id=1)  # the old controller still driving the process
        await new.write_coil(0, True, device_id=1)
        record = device.writes_since(0)
        assert overlapping_writes(record, names.__getitem__) == 1
        assert overlaps(record, names.__getitem__) == [record[4]]
    finally:
        old.close()
        new.close()
        await plant.stop()


def test_pod_addresses_name_the_pod_and_come_from_the_nodes_range(
    kube_api: kubernetes.client.ApiClient, namespace: str, control_plane: LocalControlPlane | None
) -> None:
    if control_plane is None:
        pytest.skip("node address ranges are the local control plane's")
    core = kubernetes.client.CoreV1Api(kube_api)
    node = control_plane.options.nodes[-1]
    pod = {"metadata": {"name": "writer"}, "spec": {"nodeName": node.name, "containers": [{"name": "c", "image": "x"}]}}
    core.create_namespaced_pod(namespace, pod)
    ip = wait_for(lambda: core.read_namespaced_pod("writer", namespace).status.pod_ip, timeout=60, what="a pod IP")
    assert isinstance(ip, str)
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(node_pod_cidr(node)), (ip, node_pod_cidr(node))
    # The address is usable as a client's source address on this machine (loopback).
    with socket.socket() as listener, socket.socket() as writer:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        writer.bind((ip, 0))
        writer.connect(listener.getsockname())
        accepted, peer = listener.accept()
        accepted.close()
        assert peer[0] == ip

    book = PodAddressBook(kube_api)
    assert book(ip) == f"{namespace}/writer"
    core.delete_namespaced_pod("writer", namespace, grace_period_seconds=0)
    wait_for(lambda: not core.list_namespaced_pod(namespace).items, timeout=30, what="the pod gone")
    assert book(ip) == f"{namespace}/writer", "a pod that wrote and went away is still named"
    assert book("127.0.0.1") == "127.0.0.1"
