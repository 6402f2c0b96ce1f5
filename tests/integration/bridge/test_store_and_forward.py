"""Nothing lost: broker outages under load, bridge restarts while buffering, and the bound on the buffer."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from shopfloor_localsite.pki import issue, new_authority, write_cert, write_key
from tests.integration.bridge.probe import Probe, Received, eventually
from tests.integration.bridge.sinks import running_sink, settings_for
from tests.support.mosquitto import Mosquitto

OUTAGE_SECONDS = float(os.environ.get("SHOPFLOOR_BRIDGE_OUTAGE_SECONDS", "3"))


def counters_and_check_sequence(messages: list[Received]) -> list[int]:
    """Counter values in arrival order, asserting Sparkplug seq continuity within every birth."""
    values: list[int] = []
    expected_seq: int | None = None
    for message in messages:
        if message.kind == "NBIRTH":
            assert message.sparkplug().seq == 0
            expected_seq = 1
        elif message.kind == "NDATA":
            payload = message.sparkplug()
            assert expected_seq is not None, "NDATA before any NBIRTH"
            assert payload.seq == expected_seq, f"seq {payload.seq}, expected {expected_seq}"
            expected_seq = (expected_seq + 1) % 256
            values += [m.int_value for m in payload.metrics if m.alias == 1]
    return values


async def produce(bridge: object, first: int, seconds: float, period: float = 0.002) -> int:
    """Increments the counter tag every `period` for `seconds`; returns the next counter value."""
    value = first
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        bridge.change("dev/Counter", value)  # type: ignore[attr-defined]
        value += 1
        await asyncio.sleep(period)
    return value


async def test_broker_killed_under_load_every_message_arrives_once_in_order(broker: Mosquitto, tmp_path: Path) -> None:
    probe = Probe(broker, ("spBv1.0/plant-a/#",)).start()
    probe.host_state("scada", online=True)  # the probe is the primary host: births wait until it is subscribed
    async with running_sink(broker, tmp_path / "spool", primary_host_id="scada") as bridge:
        await eventually(lambda: probe.of_kind("NBIRTH"))
        next_value = await produce(bridge, 1, 1.0)
        broker.stop(kill=True)
        next_value = await produce(bridge, next_value, OUTAGE_SECONDS)
        assert bridge.sink.spool.pending > 0  # really buffered while the broker was away
        broker.start()
        next_value = await produce(bridge, next_value, 1.0)
        last = next_value - 1
        await eventually(
            lambda: last in counters_and_check_sequence(probe.snapshot()), timeout=30, what=f"counter {last}"
        )
        dropped = bridge.sink.spool.dropped
    values = counters_and_check_sequence(probe.snapshot())
    assert values == list(range(1, last + 1))
    assert dropped == 0
    births = probe.of_kind("NBIRTH")
    assert len(births) == 2
    # What was buffered before the second birth is marked historical; what came after is live.
    replayed = [m.sparkplug() for m in probe.snapshot() if m.kind == "NDATA" and m.at_ns > births[1].at_ns]
    assert replayed[0].metrics[0].is_historical
    assert not replayed[-1].metrics[0].is_historical
    probe.stop()


async def test_bridge_restart_while_buffering_loses_nothing(broker: Mosquitto, tmp_path: Path) -> None:
    probe = Probe(broker, ("spBv1.0/plant-a/#",)).start()
    probe.host_state("scada", online=True)
    broker.stop()
    async with running_sink(broker, tmp_path / "spool", primary_host_id="scada") as bridge:
        for value in range(1, 501):
            bridge.change("dev/Counter", value)
    broker.start()
    async with running_sink(broker, tmp_path / "spool", primary_host_id="scada"):
        await eventually(lambda: 500 in counters_and_check_sequence(probe.snapshot()), timeout=20)
    assert counters_and_check_sequence(probe.snapshot()) == list(range(1, 501))
    probe.stop()


async def test_buffer_bound_drops_oldest_and_counts_them(broker: Mosquitto, tmp_path: Path) -> None:
    probe = Probe(broker, ("spBv1.0/plant-a/#",)).start()
    probe.host_state("scada", online=True)
    broker.stop()
    total = 2000
    async with running_sink(broker, tmp_path / "spool", max_bytes=32 * 1024, primary_host_id="scada") as bridge:
        for value in range(1, total + 1):
            bridge.change("dev/Counter", value)
        dropped = bridge.sink.spool.dropped
        assert dropped > 0
        assert bridge.sink.metrics.dropped._value.get() == dropped
        broker.start()
        await eventually(lambda: total in counters_and_check_sequence(probe.snapshot()), timeout=20)
    values = counters_and_check_sequence(probe.snapshot())
    assert values == list(range(dropped + 1, total + 1))  # the newest survive, in order, none twice
    probe.stop()


@pytest.mark.parametrize("mqtt_version", [4, 5])
async def test_tls_and_credentials(tls_broker: Mosquitto, tmp_path: Path, mqtt_version: int) -> None:
    probe = Probe(tls_broker, username="probe", password="probe-pw").start()
    settings = settings_for(tls_broker, username="bridge", password="s3cret", mqtt_version=mqtt_version)
    async with running_sink(tls_broker, tmp_path / "spool", settings=settings) as bridge:
        await eventually(lambda: probe.of_kind("NBIRTH"))
        bridge.change("dev/Run", True)
        data = await eventually(lambda: probe.of_kind("NDATA"))
    assert data[0].sparkplug().metrics[0].boolean_value is True
    probe.stop()


async def test_wrong_password_is_retried_not_fatal(tls_broker: Mosquitto, tmp_path: Path) -> None:
    settings = settings_for(tls_broker, username="bridge", password="wrong")
    async with running_sink(tls_broker, tmp_path / "spool", settings=settings) as bridge:
        bridge.change("dev/Run", True)
        # Refused, then tried again (each attempt is a new session with the next bdSeq); the message stays buffered.
        await eventually(lambda: bridge.sink._bd_seq.value >= 1, what="a second attempt")
        assert bridge.sink.spool.pending == 1
        assert bridge.sink.metrics.mqtt_connected._value.get() == 0
        assert repr(settings).count("wrong") == 0  # the password never shows in logs


async def test_client_certificate_for_brokers_that_require_one(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    authority = new_authority("mutual TLS test CA")
    files: dict[str, Path] = {}
    for name, client in (("server", False), ("bridge", True), ("probe", True)):
        cert, key = issue(authority, name, server_ips=() if client else ("127.0.0.1",), client=client)
        files[name], files[f"{name}-key"] = pki / f"{name}.pem", pki / f"{name}.key"
        write_cert(files[name], cert)
        write_key(files[f"{name}-key"], key)
    write_cert(pki / "ca.pem", authority.certificate)
    with Mosquitto(tmp_path / "mtls") as plain:
        plain.stop()
    broker = Mosquitto(tmp_path / "mtls", port=plain.port)
    # The listener's TLS settings, client certificates required (they apply to the listener above them).
    with broker.config_file.open("a") as config:
        config.write(
            f"cafile {pki / 'ca.pem'}\ncertfile {files['server']}\nkeyfile {files['server-key']}\n"
            "require_certificate true\n"
        )
    broker.tls, broker.ca_file = True, pki / "ca.pem"
    with broker:
        probe = Probe(broker, client_certificate=(files["probe"], files["probe-key"])).start()
        settings = settings_for(broker, cert_file=files["bridge"], key_file=files["bridge-key"])
        async with running_sink(broker, tmp_path / "spool", settings=settings):
            await eventually(lambda: probe.of_kind("NBIRTH"), what="birth over mutual TLS")
        async with running_sink(broker, tmp_path / "spool-anonymous") as without_certificate:
            without_certificate.change("dev/Run", True)
            # Each attempt is a new session with the next bdSeq: wait until one has been refused.
            await eventually(lambda: without_certificate.sink._bd_seq.value >= 1, what="a second attempt")
            assert without_certificate.sink.spool.pending == 1
            assert without_certificate.sink.metrics.mqtt_connected._value.get() == 0
        assert len(probe.of_kind("NBIRTH")) == 1
        probe.stop()
