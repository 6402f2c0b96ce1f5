"""What the MQTT sink publishes for a batch of tag changes: Sparkplug B NDATA, or plain JSON per tag."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shopfloor_bridge.sparkplug import payloads
from shopfloor_bridge.tags import Quality, TagValue

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
