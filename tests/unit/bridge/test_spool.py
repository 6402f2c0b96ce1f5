from pathlib import Path

import pytest

from shopfloor_bridge.spool import Spool


def test_replays_in_order_until_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    ids = [spool.append(f"m{i}".encode()) for i in range(5)]
    assert ids == [0, 1, 2, 3, 4]
    assert [d for _, d in spool.read(3)] == [b"m0", b"m1", b"m2"]
    assert [d for _, d in spool.read(10)] == [b"m3", b"m4"]
    spool.ack_through(1)
    spool.rewind()
    assert [i for i, _ in spool.read(10)] == [2, 3, 4]
    assert spool.pending == 3


def test_survives_restart_without_losing_or_repeating(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    for i in range(10):
        spool.append(f"m{i}".encode())
    spool.read(4)
    spool.ack_through(3)
    spool.close()
    reopened = Spool(tmp_path, 1 << 20)
    assert [d for _, d in reopened.read(100)] == [f"m{i}".encode() for i in range(4, 10)]
    assert reopened.append(b"next") == 10


def test_torn_tail_is_cut_off_and_appends_continue(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.append(b"whole")
    spool.append(b"torn-in-half")
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    segment.write_bytes(segment.read_bytes()[:-4])
    reopened = Spool(tmp_path, 1 << 20)
    assert reopened.append(b"after") == 1
    assert [d for _, d in reopened.read(10)] == [b"whole", b"after"]


def test_drops_oldest_beyond_bound_and_counts_each_drop(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 64 * 1024, segment_bytes=8 * 1024)
    record = b"x" * 1000
    for _ in range(200):
        spool.append(record)
    assert spool.size_bytes <= 64 * 1024 + 8 * 1024
    assert spool.dropped > 0
    remaining = spool.read(1000)
    assert len(remaining) + spool.dropped == 200
    first_kept = remaining[0][0]
    assert first_kept == spool.dropped  # exactly the oldest went, in order
    assert [i for i, _ in remaining] == list(range(first_kept, 200))


def test_acknowledged_segments_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20, segment_bytes=4096)
    for _ in range(50):
        spool.append(b"y" * 500)
    assert len(list(tmp_path.glob("*.seg"))) > 3
    spool.read(50)
    spool.ack_through(49)
    assert len(list(tmp_path.glob("*.seg"))) == 1
    assert spool.pending == 0


def test_rejects_nonpositive_bound(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"buffer\.maxBytes"):
        Spool(tmp_path, 0)


def test_sync_covers_rolled_segments_and_leaves_no_file_open(tmp_path: Path) -> None:
    import os

    before = len(os.listdir("/proc/self/fd"))
    spool = Spool(tmp_path, 1 << 20, segment_bytes=4096)
    for _ in range(40):
        spool.append(b"z" * 500)  # several segment rolls, none of them waiting for fsync
    handles = spool.begin_sync()
    assert len(handles) > 2  # retired segments and the directory, besides the active segment
    Spool.finish_sync(handles)
    assert spool.begin_sync() == []  # nothing written since
    spool.close()
    assert len(os.listdir("/proc/self/fd")) == before
