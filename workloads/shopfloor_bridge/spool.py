"""The store-and-forward buffer: a bounded, append-only log on disk of messages not yet acknowledged by the broker.

Layout of the directory: segment files `<first id>.seg` holding frames `[u32 length][u32 crc32][u64 id][data]`,
and `head`, the id of the oldest message not yet acknowledged. Every message gets the next id; ids never repeat.

Durability: each append is one write(2) to the segment, so a crash of the bridge process loses nothing. A sync
fsyncs whatever was written since the last one (segments, the head, the directory); the bridge runs it off the event
loop once per `fsync_interval` (1 s by default) and at shutdown, so a power loss loses at most that last interval.
A torn frame at the end of a segment (power loss during a write) fails its CRC and is cut off when the buffer is
opened.

Bound: when the segments exceed `max_bytes`, the oldest whole segment is deleted and every unacknowledged message in
it is counted in `dropped`. Segments are an eighth of the bound (at most 4 MiB), so a drop loses at most that much.
"""

from __future__ import annotations

import errno
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

_HEADER = struct.Struct("<IIQ")
_HEAD = struct.Struct("<Q")
MAX_SEGMENT_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class _Segment:
    first_id: int
    path: Path
    size: int
    ids: list[tuple[int, int]]  # (id, file offset of its frame), in order


class Spool:
    def __init__(self, directory: Path, max_bytes: int, *, segment_bytes: int | None = None) -> None:
        if max_bytes <= 0:
            raise ValueError("buffer.maxBytes must be positive")
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(4096, min(MAX_SEGMENT_BYTES, max_bytes // 8))
        self.dropped = 0
        self._segments: list[_Segment] = []
        self._head_file = self.directory / "head"
        self._head_fd: int | None = None
        self._head = 0
        self._next_id = 0
        self._writer: int | None = None
        self._retired: list[int] = []  # files closed for writing, still to fsync (then close)
        self._dirty = False
        self._recover()
        # The reader is where the publisher continues: the first message not yet handed out since the last rewind.
        self._read_id = self._head

    # ---- state -------------------------------------------------------------------------------------------------

    @property
    def head(self) -> int:
        """Id of the oldest message not yet acknowledged."""
        return self._head

    @property
    def next_id(self) -> int:
        """Id the next appended message will get."""
        return self._next_id

    @property
    def pending(self) -> int:
        """Messages stored and not yet acknowledged."""
        return self._next_id - self._head

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    # ---- writing -----------------------------------------------------------------------------------------------

    def append(self, data: bytes) -> int:
        message_id = self._next_id
        frame = _HEADER.pack(len(data), zlib.crc32(data, message_id & 0xFFFFFFFF), message_id) + data
        if not self._segments or self._segments[-1].size >= self.segment_bytes:
            self._roll(message_id)
        segment = self._segments[-1]
        assert self._writer is not None
        try:
            os.write(self._writer, frame)
        except OSError as exc:
            if exc.errno != errno.ENOSPC or len(self._segments) < 2:
                raise
            # The disk filled before the bound did: make room the same way, by dropping the oldest data.
            self._drop_oldest()
            os.write(self._writer, frame)
        segment.ids.append((message_id, segment.size))
        segment.size += len(frame)
        self._next_id += 1
        self._dirty = True
        self._enforce_bound()
        return message_id

    def sync(self) -> None:
        """Makes everything appended so far durable against power loss."""
        self.finish_sync(self.begin_sync())

    def begin_sync(self) -> list[int]:
        """Duplicates of the files with unsynced writes: `finish_sync` may then run in another thread, even while
        appends go on and roll the segment (a duplicate keeps the file open)."""
        if not self._dirty:
            return []
        self._dirty = False
        retired, self._retired = self._retired, []
        return retired + [os.dup(fd) for fd in (self._writer, self._head_fd) if fd is not None]

    @staticmethod
    def finish_sync(fds: list[int]) -> None:
        for fd in fds:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        self.sync()
        if self._writer is not None:
            os.close(self._writer)
            self._writer = None
        if self._head_fd is not None:
            os.fsync(self._head_fd)
            os.close(self._head_fd)
            self._head_fd = None

    # ---- reading and acknowledging -----------------------------------------------------------------------------

    def read(self, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` messages after those already read, in id order; they stay stored until acknowledged."""
        out: list[tuple[int, bytes]] = []
        for segment in self._segments:
            if not segment.ids or segment.ids[-1][0] < self._read_id:
                continue
            start = self._read_id - segment.ids[0][0]
            wanted = segment.ids[start : start + limit - len(out)]
            if not wanted:
                continue
            with segment.path.open("rb") as f:
                f.seek(wanted[0][1])
                for message_id, _offset in wanted:
                    length, _crc, stored_id = _HEADER.unpack(f.read(_HEADER.size))
                    assert stored_id == message_id
                    out.append((message_id, f.read(length)))
            self._read_id = out[-1][0] + 1
            if len(out) >= limit:
                break
        return out

    def rewind(self) -> None:
        """Reads start again at the oldest unacknowledged message (after a lost connection)."""
        self._read_id = self._head

    def ack_through(self, message_id: int) -> None:
        """Every message up to and including `message_id` was acknowledged."""
        if message_id < self._head:
            return
        self._head = message_id + 1
        self._read_id = max(self._read_id, self._head)
        if self._head_fd is None:
            self._head_fd = os.open(self._head_file, os.O_WRONLY | os.O_CREAT, 0o600)
        os.pwrite(self._head_fd, _HEAD.pack(self._head), 0)
        self._dirty = True
        while len(self._segments) > 1 and self._segments[1].first_id <= self._head:
            self._delete_oldest()

    # ---- internals ---------------------------------------------------------------------------------------------

    def _roll(self, first_id: int) -> None:
        # The finished segment and the directory (which gains a file) are fsynced by the next sync, not here:
        # appends never wait for the disk.
        if self._writer is not None:
            self._retired.append(self._writer)
        path = self.directory / f"{first_id:020d}.seg"
        self._writer = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segments.append(_Segment(first_id, path, 0, []))
        self._retired.append(os.open(self.directory, os.O_RDONLY))
        self._dirty = True

    def _enforce_bound(self) -> None:
        while len(self._segments) > 1 and self.size_bytes > self.max_bytes:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        oldest = self._segments[0]
        self.dropped += sum(1 for message_id, _ in oldest.ids if message_id >= self._head)
        self._delete_oldest()
        self._head = max(self._head, self._segments[0].first_id)
        self._read_id = max(self._read_id, self._head)

    def _delete_oldest(self) -> None:
        oldest = self._segments.pop(0)
        oldest.path.unlink(missing_ok=True)

    def _recover(self) -> None:
        paths = sorted(self.directory.glob("*.seg"))
        for path in paths:
            segment = _scan(path)
            if segment.ids:
                self._segments.append(segment)
            else:
                path.unlink()
        if self._head_file.exists():
            raw = self._head_file.read_bytes()
            if len(raw) >= _HEAD.size:
                (self._head,) = _HEAD.unpack(raw[: _HEAD.size])
        if self._segments:
            last = self._segments[-1]
            self._next_id = last.ids[-1][0] + 1
            self._head = min(max(self._head, self._segments[0].first_id), self._next_id)
            self._writer = os.open(last.path, os.O_WRONLY | os.O_APPEND)
        else:
            self._next_id = self._head


def _scan(path: Path) -> _Segment:
    """The intact frames of a segment; a torn or corrupt tail is cut off so appends continue after good data."""
    data = path.read_bytes()
    ids: list[tuple[int, int]] = []
    offset = 0
    expected: int | None = None
    while offset + _HEADER.size <= len(data):
        length, crc, message_id = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + length
        body = data[offset + _HEADER.size : end]
        if end > len(data) or zlib.crc32(body, message_id & 0xFFFFFFFF) != crc:
            break
        if expected is not None and message_id != expected:
            break
        ids.append((message_id, offset))
        expected = message_id + 1
        offset = end
    if offset != len(data):
        with path.open("r+b") as f:
            f.truncate(offset)
    first_id = ids[0][0] if ids else int(path.stem)
    return _Segment(first_id, path, offset, ids)
