"""What the MQTT sink publishes for a batch of tag changes: Sparkplug B NDATA, DDATA (with DBIRTH/DDEATH when a
device comes and goes), or plain JSON per tag."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shopfloor_bridge.sparkplug import payloads
from shopfloor_bridge.tags import Quality, TagInfo, TagTable, TagValue

_TOPIC_LENGTH = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes

    def pack(self) -> bytes:
        """The message as stored in the store-and-forward buffer."""
        topic = self.topic.encode()
        return _TOPIC_LENGTH.pack(len(topic)) + topic + self.payload

    @staticmethod
    def unpack(data: bytes) -> Message:
        (length,) = _TOPIC_LENGTH.unpack_from(data)
        end = _TOPIC_LENGTH.size + length
        return Message(data[_TOPIC_LENGTH.size : end].decode(), data[end:])


class MessageFormat(Protocol):
    def encode(self, changes: Sequence[TagValue]) -> list[Message]: ...


class SparkplugFormat:
    """One NDATA per batch, aliases only; the sequence number is set when it is published."""

    def __init__(self, topics: payloads.Topics, aliases: payloads.Aliases) -> None:
        self.topics = topics
        self.aliases = aliases

    def encode(self, changes: Sequence[TagValue]) -> list[Message]:
        return [Message(self.topics.ndata, payloads.data(self.aliases, changes))]

    def births(self, table: TagTable, bd_seq: int) -> list[Message]:
        """The birth sequence of a session: one NBIRTH with every tag."""
        return [Message(self.topics.nbirth, payloads.birth(self.aliases, table.snapshot(), bd_seq))]

    def after_births(self) -> list[Message]:
        return []

    def as_history(self, message: Message) -> Message | None:
        return None


class SparkplugDeviceFormat:
    """Each source is a Sparkplug device named after it, its tags the device's metrics (aliases stay unique across the
    edge node). A batch becomes one DDATA per device that changed; a device whose tags all turn bad (lost, or every
    read refused) gets a DDEATH instead, and a DBIRTH with every current value when one of them is good again. These
    go through the buffer with the data, so a host sees them in the order they happened."""

    def __init__(
        self, topics: payloads.Topics, aliases: payloads.Aliases, table: TagTable, devices: dict[str, list[str]]
    ) -> None:
        self.topics = topics
        self.aliases = aliases
        self.table = table
        self.devices = devices
        self._device_of = {tag: device for device, tags in devices.items() for tag in tags}
        self.alive = dict.fromkeys(devices, False)  # as of the newest message handed to the buffer
        self._good: set[str] = set()  # tags whose latest value is good
        self._good_count = dict.fromkeys(devices, 0)
        self._no_tags = payloads.Aliases([])

    def encode(self, changes: Sequence[TagValue]) -> list[Message]:
        by_device: dict[str, list[TagValue]] = {}
        for change in changes:
            device = self._device_of[change.name]
            by_device.setdefault(device, []).append(change)
            good = change.quality is Quality.GOOD
            if good != (change.name in self._good):
                (self._good.add if good else self._good.discard)(change.name)
                self._good_count[device] += 1 if good else -1
        messages: list[Message] = []
        for device, device_changes in by_device.items():
            alive = self._good_count[device] > 0
            if alive and self.alive[device]:
                messages.append(
                    Message(self.topics.device("DDATA", device), payloads.data(self.aliases, device_changes))
                )
            elif alive:
                messages.append(self.device_birth(device))
            elif self.alive[device]:
                messages.append(Message(self.topics.device("DDEATH", device), payloads.device_death()))
            self.alive[device] = alive
        return messages

    def device_birth(self, device: str) -> Message:
        names = self.devices[device]
        tags = [TagInfo(name, self.table.info[name].datatype) for name in names]
        current = [self.table.current(name) for name in names]
        return Message(self.topics.device("DBIRTH", device), payloads.device_birth(self.aliases, device, tags, current))

    def births(self, table: TagTable, bd_seq: int) -> list[Message]:
        """The birth sequence of a session: an NBIRTH with the node's own metrics, then a DBIRTH for every device
        (a lost device's metrics are null; its DDEATH follows in `after_births`)."""
        nbirth = Message(self.topics.nbirth, payloads.birth(self._no_tags, [], bd_seq))
        return [nbirth, *(self.device_birth(device) for device in self.devices)]

    def as_history(self, message: Message) -> Message:
        """A DBIRTH or DDEATH buffered before the current birth sequence, which already says which devices are alive:
        replayed as historical DDATA, so its values (or the nulls of a death) stay in the host's history."""
        device = message.topic.rsplit("/", 1)[1]
        topic = self.topics.device("DDATA", device)
        if payloads.message_kind(message.topic) == "DBIRTH":
            return Message(topic, payloads.birth_as_history(message.payload))
        return Message(topic, payloads.death_as_history(message.payload, self.aliases, self.devices[device]))

    def after_births(self) -> list[Message]:
        """DDEATH for every device lost at the birth, queued behind the data buffered before it."""
        return [
            Message(self.topics.device("DDEATH", d), payloads.device_death()) for d, up in self.alive.items() if not up
        ]


class JsonFormat:
    """One message per changed tag under `<topicPrefix>/<tag>`: {"value", "quality", "timestamp" (epoch ms)}."""

    def __init__(self, topic_prefix: str) -> None:
        self.prefix = topic_prefix.rstrip("/")

    def encode(self, changes: Sequence[TagValue]) -> list[Message]:
        return [
            Message(
                f"{self.prefix}/{change.name}",
                json.dumps(
                    {
                        "value": change.value if change.quality is Quality.GOOD else None,
                        "quality": str(change.quality),
                        "timestamp": change.source_ms,
                    }
                ).encode(),
            )
            for change in changes
        ]
