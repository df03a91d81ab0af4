"""The MQTT topic scheme: ``guanjia/v1/{site}/{device}/{channel}[/{name}]``.

Channels and the name segment:

=============  ==========  ===  ======  =========================================
channel        name        QoS  retain  payload
=============  ==========  ===  ======  =========================================
status         -           1    yes     Status JSON (also the LWT, ``offline``)
heartbeat      -           0    no      Heartbeat JSON
event          -           1    no      DetectionEvent JSON
snapshot       snapshot id 1    no      raw JPEG bytes (binary, no JSON envelope)
telemetry      -           1    no      TelemetryBatch JSON
cmd            command     1    no      Command JSON (gateway → device)
cmd_result     -           1    no      CommandResult JSON (device → gateway)
ack            -           1    no      Ack JSON (gateway → device): msg ids committed
=============  ==========  ===  ======  =========================================

Delivery is end to end: a device keeps an event, snapshot or command result in its outbox
until an ``ack`` names it (the gateway publishes one after its database commit), and re-sends
it until then. A broker's PUBACK only ends one publication attempt.

Site, device and name segments are 1-64 characters of ``[A-Za-z0-9_-]``: no ``/``, no MQTT
wildcards, nothing that a Mosquitto ACL pattern could misread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from contract.errors import TopicError

ROOT = "guanjia"
VERSION = "v1"
PREFIX = f"{ROOT}/{VERSION}"

_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Channel(StrEnum):
    """The last fixed segment of a device topic."""

    STATUS = "status"
    HEARTBEAT = "heartbeat"
    EVENT = "event"
    SNAPSHOT = "snapshot"
    TELEMETRY = "telemetry"
    CMD = "cmd"
    CMD_RESULT = "cmd_result"
    ACK = "ack"


@dataclass(frozen=True)
class ChannelSpec:
    """Delivery rules of one channel."""

    qos: int
    retain: bool
    needs_name: bool
    binary: bool


CHANNEL_SPECS: dict[Channel, ChannelSpec] = {
    Channel.STATUS: ChannelSpec(qos=1, retain=True, needs_name=False, binary=False),
    Channel.HEARTBEAT: ChannelSpec(qos=0, retain=False, needs_name=False, binary=False),
    Channel.EVENT: ChannelSpec(qos=1, retain=False, needs_name=False, binary=False),
    Channel.SNAPSHOT: ChannelSpec(qos=1, retain=False, needs_name=True, binary=True),
    Channel.TELEMETRY: ChannelSpec(qos=1, retain=False, needs_name=False, binary=False),
    Channel.CMD: ChannelSpec(qos=1, retain=False, needs_name=True, binary=False),
    Channel.CMD_RESULT: ChannelSpec(qos=1, retain=False, needs_name=False, binary=False),
    Channel.ACK: ChannelSpec(qos=1, retain=False, needs_name=False, binary=False),
}

DEVICE_CHANNELS = frozenset(
    {
        Channel.STATUS,
        Channel.HEARTBEAT,
        Channel.EVENT,
        Channel.SNAPSHOT,
        Channel.TELEMETRY,
        Channel.CMD_RESULT,
    }
)
"""Channels a device publishes on; `cmd` and `ack` go the other way (gateway → device)."""


def check_segment(value: str, what: str) -> str:
    """Return `value` if it is a legal topic segment, else raise TopicError naming `what`."""
    if not _SEGMENT.match(value):
        raise TopicError(f"{what} {value!r} is not 1-64 characters of [A-Za-z0-9_-]")
    return value


@dataclass(frozen=True)
class Topic:
    """A parsed device topic. Build with the helpers below or `parse_topic`."""

    site_id: str
    device_id: str
    channel: Channel
    name: str | None = None

    def __post_init__(self) -> None:
        check_segment(self.site_id, "site id")
        check_segment(self.device_id, "device id")
        spec = CHANNEL_SPECS[self.channel]
        if spec.needs_name:
            if self.name is None:
                raise TopicError(f"channel {self.channel.value!r} needs a name segment")
            check_segment(self.name, f"{self.channel.value} name")
        elif self.name is not None:
            raise TopicError(f"channel {self.channel.value!r} takes no name segment")

    @property
    def spec(self) -> ChannelSpec:
        """QoS, retain and payload kind for this topic's channel."""
        return CHANNEL_SPECS[self.channel]

    def __str__(self) -> str:
        base = f"{PREFIX}/{self.site_id}/{self.device_id}/{self.channel.value}"
        return base if self.name is None else f"{base}/{self.name}"


def status_topic(site_id: str, device_id: str) -> Topic:
    """The retained online/offline topic (also the LWT topic)."""
    return Topic(site_id, device_id, Channel.STATUS)


def heartbeat_topic(site_id: str, device_id: str) -> Topic:
    """The periodic health topic."""
    return Topic(site_id, device_id, Channel.HEARTBEAT)


def event_topic(site_id: str, device_id: str) -> Topic:
    """Where DetectionEvents go."""
    return Topic(site_id, device_id, Channel.EVENT)


def snapshot_topic(site_id: str, device_id: str, snapshot_id: str) -> Topic:
    """Where one JPEG snapshot goes; `snapshot_id` is the one in the event's SnapshotRef."""
    return Topic(site_id, device_id, Channel.SNAPSHOT, snapshot_id)


def telemetry_topic(site_id: str, device_id: str) -> Topic:
    """Where sensor TelemetryBatches go."""
    return Topic(site_id, device_id, Channel.TELEMETRY)


def command_topic(site_id: str, device_id: str, name: str) -> Topic:
    """Where the gateway sends command `name` to one device."""
    return Topic(site_id, device_id, Channel.CMD, name)


def command_result_topic(site_id: str, device_id: str) -> Topic:
    """Where a device answers every command."""
    return Topic(site_id, device_id, Channel.CMD_RESULT)


def ack_topic(site_id: str, device_id: str) -> Topic:
    """Where the gateway tells one device which of its messages it has committed."""
    return Topic(site_id, device_id, Channel.ACK)


_CHANNELS: dict[str, Channel] = {channel.value: channel for channel in Channel}

PARSED_CACHE_SIZE = 4096
"""Topics `parse_topic` remembers: a gateway hears the same few topics per device again and
again, and a parse (split, channel lookup, three segment checks) cost ~1.5 µs per message."""

_parsed: dict[str, Topic] = {}


def parse_topic(topic: str) -> Topic:
    """Parse a concrete topic (no wildcards) or raise TopicError saying what is wrong."""
    # A Topic is a frozen value of its string alone, so a parsed one can be handed out again;
    # only topics that parse are kept, and the whole cache is dropped when full (a bound
    # that costs a re-parse per device, never memory that grows with hostile topics).
    found = _parsed.get(topic)
    if found is not None:
        return found
    parsed = _parse(topic)
    if len(_parsed) >= PARSED_CACHE_SIZE:
        _parsed.clear()
    _parsed[topic] = parsed
    return parsed


def _parse(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != ROOT:
        raise TopicError(f"topic {topic!r} is not {PREFIX}/{{site}}/{{device}}/{{channel}}")
    if parts[1] != VERSION:
        raise TopicError(
            f"topic {topic!r} has version {parts[1]!r}; this receiver speaks {VERSION}"
        )
    channel = _CHANNELS.get(parts[4])
    if channel is None:
        raise TopicError(f"topic {topic!r} has unknown channel {parts[4]!r}")
    if len(parts) > 6:
        raise TopicError(f"topic {topic!r} has too many segments")
    name = parts[5] if len(parts) == 6 else None
    return Topic(parts[2], parts[3], channel, name)


def subscription(
    channel: Channel | None = None, *, site_id: str = "+", device_id: str = "+"
) -> str:
    """A subscription filter: one channel (all names under it) or every channel with ``#``.

    `site_id` / `device_id` default to the single-level wildcard.
    """
    for value, what in ((site_id, "site id"), (device_id, "device id")):
        if value != "+":
            check_segment(value, what)
    base = f"{PREFIX}/{site_id}/{device_id}"
    if channel is None:
        return f"{base}/#"
    if CHANNEL_SPECS[channel].needs_name:
        return f"{base}/{channel.value}/+"
    return f"{base}/{channel.value}"
