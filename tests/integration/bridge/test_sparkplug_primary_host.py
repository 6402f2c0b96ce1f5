"""The edge node's session rules against real Mosquitto brokers: the primary host's STATE, several brokers walked in
order, the Will, and a clean stop. The probes play the primary host; payloads decode with the official schema."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest

from shopfloor_bridge.mqtt_session import BrokerSettings
from tests.integration.bridge.probe import Probe, eventually
from tests.integration.bridge.sinks import checked, request_rebirth, running_sink, settings_for
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.sparkplug import metric_value

HOST = "scada"


def bd_seq(message: object) -> int:
    metrics = message.sparkplug().metrics  # type: ignore[attr-defined]
    return int(next(metric_value(m) for m in metrics if m.name == "bdSeq"))


async def test_stale_state_is_ignored_and_a_newer_offline_ends_the_session(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-message-flow-edge-node-birth-publish-phid-wait, -phid-wait-online, -phid-wait-timestamp, -phid-offline;
    tck-id-operational-behavior-edge-node-termination-host-offline, -host-offline-timestamp, -host-offline-reconnect;
    tck-id-operational-behavior-edge-node-birth-sequence-wait."""
    now = int(time.time() * 1000)
    probe = Probe(broker, ("spBv1.0/#",)).start()
    async with running_sink(broker, tmp_path / "spool", primary_host_id=HOST) as bridge:
        await eventually(lambda: bridge.sink._connected, what="connected")
        probe.host_state(HOST, online=True, timestamp=now + 1000)
        await eventually(lambda: probe.of_kind("NBIRTH"), what="NBIRTH once the host is online")
        probe.host_state(HOST, online=False, timestamp=now)  # older than the online one: a stale replay
        # A rebirth request after it: once answered, the bridge has handled the STATE (one connection, in order).
        request_rebirth(probe)
        await eventually(lambda: len(probe.of_kind("NBIRTH")) == 2, what="the rebirth after the stale STATE")
        bridge.change("dev/Counter", 1)
        await eventually(lambda: probe.of_kind("NDATA"), what="still publishing after a stale offline STATE")
        assert not probe.of_kind("NDEATH")
        probe.host_state(HOST, online=False, timestamp=now + 2000)
        await eventually(lambda: probe.of_kind("NDEATH"), what="NDEATH when the host goes offline")
        await eventually(lambda: bridge.sink._connected and bridge.sink._session, what="connected again at once")
        probe.host_state(HOST, online=True, timestamp=now + 1500)  # stale again: still offline
        bridge.change("dev/Counter", 2)  # buffered until the host is back
        await probe.round_trip()
        probe.host_state(HOST, online=True, timestamp=now + 3000)
        await eventually(lambda: len(probe.of_kind("NBIRTH")) == 3, what="a new session when the host is back")
        await eventually(lambda: len(probe.of_kind("NDATA")) == 2, what="the buffered change")
    checker = checked(probe)
    first, reborn, second = probe.of_kind("NBIRTH")
    death = probe.of_kind("NDEATH")[0]
    assert bd_seq(reborn) == bd_seq(first)  # the same session: the stale STATE changed nothing
    assert bd_seq(death) == bd_seq(first) and bd_seq(second) == bd_seq(first) + 1
    # No birth while the host was offline: the second NBIRTH follows the online STATE at now + 3000.
    online_again = next(
        m for m in probe.snapshot() if m.kind == HOST and b'"timestamp": %d' % (now + 3000) in m.payload
    )
    assert second.at_ns > online_again.at_ns
    assert checker.deaths[:1] == [bd_seq(first)]  # one NDEATH for that session: the Will was not published too
    probe.stop()


async def test_only_the_configured_host_id_counts(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-message-flow-edge-node-birth-publish-phid-wait-id: STATE of other hosts (even differing only in case)
    is not the primary host's."""
    probe = Probe(broker, ("spBv1.0/#",)).start()
    async with running_sink(broker, tmp_path / "spool", primary_host_id=HOST) as bridge:
        await eventually(lambda: bridge.sink._connected, what="connected")
        probe.host_state("SCADA", online=True)
        probe.host_state("other", online=True)
        probe.host_state(HOST, online=False)
        await probe.round_trip()
        probe.host_state(HOST, online=True)
        await eventually(lambda: probe.of_kind("NBIRTH"), what="NBIRTH")
    mine = next(m for m in probe.snapshot() if m.kind == HOST and b'"online": true' in m.payload)
    assert probe.of_kind("NBIRTH")[0].at_ns > mine.at_ns
    probe.stop()


async def test_brokers_are_walked_in_order_to_one_where_the_host_is_online(tmp_path: Path) -> None:
    """tck-id-operational-behavior-primary-application-state-with-multiple-servers-walk, -state-subs, -single-server;
    tck-id-operational-behavior-edge-node-birth-sequence-wait: offline on the first broker, so the node moves on and
    is born on the second; when the host goes offline there, the node dies there and is born on the first again."""
    with Mosquitto(tmp_path / "a") as first, Mosquitto(tmp_path / "b") as second:
        on_first = Probe(first, ("spBv1.0/#",)).start()
        on_second = Probe(second, ("spBv1.0/#",)).start()
        now = int(time.time() * 1000)
        on_first.host_state(HOST, online=False, timestamp=now)
        on_second.host_state(HOST, online=True, timestamp=now)
        settings = [settings_for(first), settings_for(second)]
        async with running_sink(first, tmp_path / "spool", primary_host_id=HOST, settings=settings) as bridge:
            await eventually(lambda: on_second.of_kind("NBIRTH"), what="NBIRTH on the second broker")
            bridge.change("dev/Counter", 1)
            await eventually(lambda: on_second.of_kind("NDATA"), what="data on the second broker")
            on_first.host_state(HOST, online=True, timestamp=now + 1)
            on_second.host_state(HOST, online=False, timestamp=now + 1)
            await eventually(lambda: on_first.of_kind("NBIRTH"), what="NBIRTH on the first broker")
            bridge.change("dev/Counter", 2)
            await eventually(lambda: on_first.of_kind("NDATA"), what="data on the first broker")
        assert len(on_first.of_kind("NBIRTH")) == 1 and len(on_second.of_kind("NBIRTH")) == 1
        death = on_second.of_kind("NDEATH")[0]
        assert death.at_ns < on_first.of_kind("NBIRTH")[0].at_ns  # one broker at a time
        assert bd_seq(on_first.of_kind("NBIRTH")[0]) == bd_seq(on_second.of_kind("NBIRTH")[0]) + 1
        for probe in (on_first, on_second):
            checked(probe)
            probe.stop()


async def test_an_unreachable_broker_is_skipped(broker: Mosquitto, tmp_path: Path) -> None:
    """With failoverUrls, a broker that refuses connections is passed over for the next one in the list."""
    probe = Probe(broker, ("spBv1.0/#",)).start()
    nobody = BrokerSettings(host="127.0.0.1", port=free_port(), connect_timeout=1.0)
    async with running_sink(broker, tmp_path / "spool", settings=[nobody, settings_for(broker)]):
        await eventually(lambda: probe.of_kind("NBIRTH"), what="NBIRTH on the reachable broker")
    checked(probe)
    probe.stop()


async def test_a_lost_connection_leaves_the_will_and_a_clean_stop_does_not(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-payloads-ndeath-will-message, -will-message-qos, -will-message-retain, -ndeath-bdseq, -ndeath-seq;
    tck-id-message-flow-edge-node-birth-publish-will-message-topic, -will-message-payload-bdSeq;
    tck-id-topics-nbirth-bdseq-increment; tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath,
    -intentional-disconnect-packet; tck-id-payloads-nbirth-retain, -dbirth-retain (nothing retained)."""
    probe = Probe(broker, ("spBv1.0/#",)).start()
    async with running_sink(broker, tmp_path / "spool") as bridge:
        await eventually(lambda: probe.of_kind("NBIRTH"), what="NBIRTH")
        session = bridge.sink._session
        assert session is not None
        session._client.socket().shutdown(socket.SHUT_RDWR)  # the network goes away under the bridge
        await eventually(lambda: len(probe.of_kind("NBIRTH")) == 2, what="born again on a new connection")
        stopping_ms = int(time.time() * 1000)
    await eventually(lambda: len(probe.of_kind("NDEATH")) == 2, what="the clean stop's NDEATH")
    await probe.round_trip()
    await probe.round_trip()  # a Will after the clean stop would have arrived by now
    will, goodbye = probe.of_kind("NDEATH")
    births = probe.of_kind("NBIRTH")
    assert bd_seq(will) == bd_seq(births[0]) and will.qos == 1 and not will.retain
    assert bd_seq(births[1]) == bd_seq(births[0]) + 1
    assert bd_seq(goodbye) == bd_seq(births[1]) and goodbye.sparkplug().timestamp >= stopping_ms
    assert len(probe.of_kind("NDEATH")) == 2
    checked(probe)
    probe.stop()
    late = Probe(broker, ("spBv1.0/#",)).start()
    await late.round_trip()
    assert not [m for m in late.snapshot() if m.kind], "a retained Sparkplug message"
    late.stop()


async def test_the_primary_host_steps_of_the_tck(
    broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The steps of the TCK's PrimaryHostTest, with its STATE payloads (a host's birth and death STATE carry the same
    timestamp, that of its CONNECT): another host online, no birth (-phid-wait-id); the host offline, no birth
    (-phid-wait, -phid-wait-online); online, NBIRTH and every DBIRTH; offline, NDEATH
    (tck-id-operational-behavior-edge-node-termination-host-offline); the same online STATE again, no birth
    (-phid-wait-timestamp); a new host session, born again (-termination-host-offline-reconnect)."""
    caplog.set_level(logging.INFO, logger="shopfloor_bridge.primary_host")
    connect_ms = int(time.time() * 1000)
    probe = Probe(broker, ("spBv1.0/#",)).start()
    async with running_sink(broker, tmp_path / "spool", primary_host_id=HOST, devices=True) as bridge:
        bridge.change_many([("press/Counter", 1), ("press/Run", True), ("oven/Level", 180.5)])
        await eventually(lambda: bridge.sink._connected, what="connected")
        probe.host_state(f"{HOST}_WRONG", online=True, timestamp=connect_ms)
        probe.host_state(HOST, online=False, timestamp=connect_ms)
        await eventually(lambda: bridge.sink._host.said_offline, what="the offline STATE handled")
        probe.host_state(HOST, online=True, timestamp=connect_ms)
        await eventually(lambda: len(probe.of_kind("DBIRTH")) == 2, what="the birth sequence")
        probe.host_state(HOST, online=False, timestamp=connect_ms)
        await eventually(lambda: probe.of_kind("NDEATH"), what="NDEATH")
        probe.host_state(HOST, online=True, timestamp=connect_ms)
        await eventually(lambda: "ignoring an online STATE" in caplog.text, what="the replayed online STATE ignored")
        assert len(probe.of_kind("NBIRTH")) == 1
        probe.host_state(HOST, online=True, timestamp=connect_ms + 5000)  # the host connected again
        await eventually(lambda: len(probe.of_kind("DBIRTH")) == 4, what="born again")
    checker = checked(probe)
    assert checker.live_kinds[:4] == ["NBIRTH", "DBIRTH", "DBIRTH", "NDEATH"] and checker.births == 2
    probe.stop()
