"""The sync link's handshake: HMAC-SHA256 challenge-response both ways with the pair's shared key (pure functions),
the primary's listener refusing peers without the key (on loopback, the Lease lock a stub), and the settings that
read the key."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from shopfloor_api.runtime_contract import ENV_SYNC_KEY_FILE, StandbyTiming
from shopfloor_inpod.settings import PodSettings, SettingsError
from shopfloor_vplc.hot_standby import (
    ACK,
    HANDSHAKE_TIMEOUT_S,
    HELLO,
    IMAGE,
    NONCE,
    NONCE_BYTES,
    PROOF,
    AuthError,
    StandbyFollower,
    StandbyGate,
    StateSyncServer,
    check_hello,
    check_proof,
    encode_frame,
    hello_payload,
    new_nonce,
    primary_proof,
    read_frame,
    standby_mac,
)
from tests.support.waiting import async_wait_for
from tests.unit.vplc.lock_recorder import LockRecorder

pytestmark = pytest.mark.timeout(30)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
PRIMARY, STANDBY = "press-1-aaaaa", "press-1-bbbbb"


def test_a_hello_with_the_key_for_this_challenge_is_accepted_and_the_proof_checks() -> None:
    nonce_p, nonce_s = new_nonce(), new_nonce()
    hello = check_hello(KEY, nonce_p, PRIMARY, hello_payload(KEY, nonce_p, nonce_s, STANDBY, PRIMARY))
    assert (hello.standby, hello.primary, hello.nonce) == (STANDBY, PRIMARY, nonce_s)
    check_proof(KEY, nonce_s, nonce_p, PRIMARY, STANDBY, primary_proof(KEY, nonce_s, nonce_p, PRIMARY, STANDBY))


def test_a_hello_with_another_key_is_refused() -> None:
    nonce_p = new_nonce()
    with pytest.raises(AuthError, match="does not prove the key"):
        check_hello(KEY, nonce_p, PRIMARY, hello_payload(OTHER_KEY, nonce_p, new_nonce(), STANDBY, PRIMARY))


def test_a_hello_replayed_on_another_connection_is_refused() -> None:
    recorded = hello_payload(KEY, new_nonce(), new_nonce(), STANDBY, PRIMARY)
    with pytest.raises(AuthError, match="does not prove the key"):
        check_hello(KEY, new_nonce(), PRIMARY, recorded)  # this connection's challenge is another one


def test_a_hello_whose_names_were_changed_is_refused() -> None:
    nonce_p, nonce_s = new_nonce(), new_nonce()
    hello = json.loads(hello_payload(KEY, nonce_p, nonce_s, "press-1-rogue", PRIMARY))
    hello["standby"] = STANDBY  # the mac was made for another standby
    with pytest.raises(AuthError, match="does not prove the key"):
        check_hello(KEY, nonce_p, PRIMARY, json.dumps(hello).encode())
    hello = json.loads(hello_payload(KEY, nonce_p, nonce_s, STANDBY, PRIMARY))
    hello["nonce"] = new_nonce().hex()  # the standby's challenge is covered by the mac too
    with pytest.raises(AuthError, match="does not prove the key"):
        check_hello(KEY, nonce_p, PRIMARY, json.dumps(hello).encode())


def test_a_keyed_hello_for_another_primary_or_naming_this_pod_as_standby_is_refused() -> None:
    nonce_p = new_nonce()
    with pytest.raises(AuthError, match="follows primary 'press-1-old'"):
        check_hello(KEY, nonce_p, PRIMARY, hello_payload(KEY, nonce_p, new_nonce(), STANDBY, "press-1-old"))
    with pytest.raises(AuthError, match="names this pod"):
        check_hello(KEY, nonce_p, PRIMARY, hello_payload(KEY, nonce_p, new_nonce(), PRIMARY, PRIMARY))


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"standby": STANDBY, "primary": PRIMARY}).encode(),  # the unauthenticated hello of before
        json.dumps({"standby": STANDBY, "primary": PRIMARY, "nonce": "zz", "mac": "00"}).encode(),
        json.dumps({"standby": STANDBY, "primary": PRIMARY, "nonce": "00" * 8, "mac": "00" * 32}).encode(),
    ],
)
def test_malformed_hellos_are_refused(payload: bytes) -> None:
    with pytest.raises(AuthError):
        check_hello(KEY, new_nonce(), PRIMARY, payload)


def test_a_proof_with_another_key_for_another_challenge_or_reflected_is_refused() -> None:
    nonce_p, nonce_s = new_nonce(), new_nonce()
    wrong = [
        primary_proof(OTHER_KEY, nonce_s, nonce_p, PRIMARY, STANDBY),
        primary_proof(KEY, new_nonce(), nonce_p, PRIMARY, STANDBY),  # made for another connection
        primary_proof(KEY, nonce_s, nonce_p, "press-1-rogue", STANDBY),
        standby_mac(KEY, nonce_s, nonce_p, PRIMARY, STANDBY),  # the standby's own kind of mac, reflected back
        b"",
    ]
    for proof in wrong:
        with pytest.raises(AuthError, match="does not prove the key"):
            check_proof(KEY, nonce_s, nonce_p, PRIMARY, STANDBY, proof)


def test_the_server_and_the_follower_need_a_key() -> None:
    with pytest.raises(ValueError, match="shared key"):
        StateSyncServer(PRIMARY, LockRecorder(), None, "127.0.0.1", 0, b"")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shared key"):
        StandbyFollower(STANDBY, LockRecorder(), StandbyTiming(), lambda image: None, b"")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- the listener


@pytest.fixture
async def server() -> AsyncIterator[tuple[StateSyncServer, int]]:
    lock = LockRecorder()
    gate = StandbyGate(lock, StandbyTiming(), asyncio.get_running_loop().time)  # type: ignore[arg-type]
    sync = StateSyncServer(PRIMARY, lock, gate, "127.0.0.1", 0, KEY)  # type: ignore[arg-type]
    await sync.start()
    assert sync._server is not None
    port = sync._server.sockets[0].getsockname()[1]
    yield sync, port
    await sync.stop()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    kind, nonce_p = await asyncio.wait_for(read_frame(reader), 2)
    assert kind == NONCE and len(nonce_p) == NONCE_BYTES
    return reader, writer, nonce_p


async def closed(reader: asyncio.StreamReader) -> bool:
    """The server ended the connection (nothing else arrives first)."""
    try:
        return await asyncio.wait_for(reader.read(), HANDSHAKE_TIMEOUT_S * 3) == b""
    except ConnectionResetError:  # closed with bytes of ours still unread
        return True


async def until(predicate: Callable[[], bool], what: str) -> None:
    async def check() -> bool:
        return predicate()

    await async_wait_for(check, timeout=5, interval=0.005, what=what)


async def test_a_standby_with_the_key_gets_the_proof_then_images_and_a_rogue_does_not_displace_it(
    server: tuple[StateSyncServer, int],
) -> None:
    sync, port = server
    reader, writer, nonce_p = await connect(port)
    nonce_s = new_nonce()
    writer.write(encode_frame(HELLO, hello_payload(KEY, nonce_p, nonce_s, STANDBY, PRIMARY)))
    kind, proof = await asyncio.wait_for(read_frame(reader), 2)
    assert kind == PROOF
    check_proof(KEY, nonce_s, nonce_p, PRIMARY, STANDBY, proof)
    await until(lambda: sync.standby == STANDBY, "the standby connected")

    # A peer without the key naming the real standby: refused, counted, and the real standby stays connected.
    rogue_reader, rogue_writer, rogue_nonce = await connect(port)
    rogue_writer.write(encode_frame(HELLO, hello_payload(OTHER_KEY, rogue_nonce, new_nonce(), STANDBY, PRIMARY)))
    assert await closed(rogue_reader)
    rogue_writer.close()
    assert sync.peers_refused == 1 and sync.standby == STANDBY

    sync.offer(b"image", "rev")
    kind, payload = await asyncio.wait_for(read_frame(reader), 2)
    assert kind == IMAGE and payload[8:] == b"image"
    writer.write(encode_frame(ACK, payload[:8]))
    await until(lambda: sync.gate.desired == STANDBY, "the standby in sync")
    writer.close()


async def test_a_peer_that_says_nothing_or_sends_no_hello_is_dropped_after_the_handshake_timeout(
    server: tuple[StateSyncServer, int],
) -> None:
    sync, port = server
    silent_reader, silent_writer, _ = await connect(port)
    other_reader, other_writer, _ = await connect(port)
    other_writer.write(encode_frame(ACK, (1).to_bytes(8, "big")))  # an acknowledgement before any hello
    assert await closed(other_reader)
    assert await closed(silent_reader)
    assert sync.peers_refused == 2 and sync.standby == "" and sync._pending == 0
    for writer in (silent_writer, other_writer):
        writer.close()


async def test_an_oversized_hello_is_refused_without_being_read(server: tuple[StateSyncServer, int]) -> None:
    sync, port = server
    reader, writer, _ = await connect(port)
    writer.write((64 * 1024 * 1024).to_bytes(4, "big") + HELLO)  # announces 64 MiB, sends nothing more
    assert await closed(reader)
    assert sync.peers_refused == 1
    writer.close()


# ---------------------------------------------------------------------------------------------- settings


def env_with(**extra: str) -> dict[str, str]:
    return {
        "SHOPFLOOR_NAME": "press-1",
        "SHOPFLOOR_NAMESPACE": "plant",
        "SHOPFLOOR_POD_NAME": PRIMARY,
        "SHOPFLOOR_REDUNDANCY": "HotStandby",
        **extra,
    }


def test_settings_read_the_sync_key_relative_to_the_fs_root(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    folder = tmp_path / "etc/shopfloor/secrets/press-1-sync"
    folder.mkdir(parents=True)
    (folder / "sync.key").write_bytes(key)
    env = env_with(
        SHOPFLOOR_FS_ROOT=str(tmp_path), **{ENV_SYNC_KEY_FILE: "/etc/shopfloor/secrets/press-1-sync/sync.key"}
    )
    settings = PodSettings.from_env(env)
    assert settings.sync_key == key and key.hex() not in repr(settings)


@pytest.mark.parametrize("content", [None, b"", b"short"])
def test_hot_standby_without_a_usable_key_is_a_settings_error_naming_the_variable(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "sync.key"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SettingsError, match=ENV_SYNC_KEY_FILE):
        PodSettings.from_env(env_with(**{ENV_SYNC_KEY_FILE: str(path)}))
    with pytest.raises(SettingsError, match=ENV_SYNC_KEY_FILE):
        PodSettings.from_env(env_with())


def test_a_single_runtime_needs_no_key() -> None:
    settings = PodSettings.from_env({**env_with(), "SHOPFLOOR_REDUNDANCY": ""})
    assert settings.sync_key == b"" and not settings.hot_standby
