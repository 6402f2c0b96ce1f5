"""The primary host application as a Sparkplug edge node sees it: its STATE on each broker, stale ones ignored.

Sparkplug 3.0 STATE is JSON `{"online": bool, "timestamp": epoch ms}`, published retained by the host with the
timestamp of its CONNECT, so a host session's online and offline STATE carry the same timestamp. A STATE older than
the newest one accepted from the same broker is stale (a late delivery or an old retained message); so is an online
STATE no newer than the offline one that ended this node's last session there, which replays a host session known to
be over. Sparkplug 2.2 hosts publish ONLINE / OFFLINE, without a timestamp: always taken as they come.
"""

from __future__ import annotations

import json
import logging

log = logging.getLogger(__name__)


def parse_state(payload: bytes) -> tuple[bool, int | None]:
    """(online, timestamp); anything that is not a STATE counts as offline. `online` must be the boolean true."""
    text = payload.decode(errors="replace").strip()
    if text.upper() in ("ONLINE", "OFFLINE"):
        return text.upper() == "ONLINE", None
    try:
        document = json.loads(text)
        timestamp = document.get("timestamp")
        return document.get("online") is True, timestamp if isinstance(timestamp, int) else None
    except (ValueError, AttributeError):
        return False, None


class PrimaryHost:
    """What the configured host's STATE says on the broker connected to now; without a host, always online."""

    def __init__(self, host_id: str | None) -> None:
        self.host_id = host_id
        self._newest: dict[int, int] = {}  # per broker: timestamp of the newest STATE accepted there
        self._ended: dict[int, int] = {}  # per broker: timestamp of the offline STATE that ended a born session
        self.online = host_id is None
        self.said_offline = False  # the newest STATE accepted in this session says offline
        self.offline_since_birth = False  # an offline STATE was accepted since the last birth

    def new_session(self) -> None:
        self.online = self.host_id is None
        self.said_offline = self.offline_since_birth = False

    def born(self) -> None:
        self.offline_since_birth = False  # only an offline STATE after this birth ends the session

    def receive(self, payload: bytes, broker: int, *, born: bool) -> None:
        """Applies a STATE received from broker number `broker`, unless it is stale."""
        online, timestamp = parse_state(payload)
        if timestamp is not None:
            newest = self._newest.get(broker)
            if newest is not None and timestamp < newest:
                log.info("ignoring a stale STATE of the primary host (timestamp %d < %d)", timestamp, newest)
                return
            ended = self._ended.get(broker)
            if online and ended is not None and timestamp <= ended:
                log.info(
                    "ignoring an online STATE of a primary host session that went offline (timestamp %d)", timestamp
                )
                return
            self._newest[broker] = timestamp
            if not online and born:
                self._ended[broker] = timestamp
        self.online = online
        self.said_offline = not online
        self.offline_since_birth = self.offline_since_birth or not online
