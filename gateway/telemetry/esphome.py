"""ESPHome's own MQTT topics, so a stock ESPHome node needs no custom firmware. Pure.

Every ESPHome node we provision gets the topic prefix ``esphome/{site}/{device}`` (its
``mqtt: topic_prefix``), so the topic names the device and the broker ACL can keep the node
inside its prefix. What ESPHome publishes there:

- ``{prefix}/sensor/{object_id}/state``: a number as text (``"23.50"``; ``"nan"`` when the
  sensor has no reading);
- ``{prefix}/binary_sensor/{object_id}/state`` and ``{prefix}/switch/{object_id}/state``:
  ``ON`` / ``OFF``;
- ``{prefix}/status``: ``online`` / ``offline`` (the birth message and the last will).

The gateway commands a relay on ``{prefix}/switch/{object_id}/command`` with ``OFF``. The
object id is the entity name ESPHome lower-cases (``port1_temperature``); the device's
profile resolves it to a metric and port (`DeviceProfile.resolve`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ROOT = "esphome"
COMPONENTS = ("sensor", "binary_sensor", "switch")
_MAX_OBJECT_ID = 64


def prefix(site_id: str, device_id: str) -> str:
    """The topic prefix of a provisioned ESPHome node."""
    return f"{ROOT}/{site_id}/{device_id}"


def subscriptions(site_id: str = "+") -> list[str]:
    """What the gateway subscribes to for the ESPHome nodes of a site (or of every site)."""
    return [f"{ROOT}/{site_id}/+/{c}/+/state" for c in COMPONENTS] + [f"{ROOT}/{site_id}/+/status"]


def relay_command_topic(site_id: str, device_id: str, object_id: str) -> str:
    """Where a relay's ON/OFF command goes."""
    return f"{prefix(site_id, device_id)}/switch/{object_id}/command"


@dataclass(frozen=True)
class EsphomeState:
    """One entity state of one node."""

    site_id: str
    device_id: str
    component: str
    object_id: str
    value: float


@dataclass(frozen=True)
class EsphomeStatus:
    """A node's availability."""

    site_id: str
    device_id: str
    online: bool


class EsphomeError(ValueError):
    """A message on an ESPHome topic that cannot be read; the text is the dead-letter reason."""


def is_esphome(topic: str) -> bool:
    """Whether a topic is under the ESPHome root."""
    return topic.startswith(f"{ROOT}/")


def parse(topic: str, payload: bytes) -> EsphomeState | EsphomeStatus | None:
    """The state or status a message carries; None for a NaN sensor (no reading yet).
    Raises `EsphomeError` naming what is wrong."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[3] == "status":
        text = payload.decode("utf-8", "replace").strip()
        if text not in ("online", "offline"):
            raise EsphomeError(f"status: {text[:20]!r} is not 'online' or 'offline'")
        return EsphomeStatus(parts[1], parts[2], text == "online")
    if len(parts) != 6 or parts[0] != ROOT or parts[5] != "state":
        raise EsphomeError(f"topic: not {ROOT}/<site>/<device>/<component>/<object_id>/state")
    _, site_id, device_id, component, object_id, _ = parts
    if component not in COMPONENTS:
        raise EsphomeError(f"topic: component {component[:32]!r} is not one of {COMPONENTS}")
    if not object_id or len(object_id) > _MAX_OBJECT_ID:
        raise EsphomeError("topic: object id must be 1-64 characters")
    text = payload.decode("utf-8", "replace").strip()
    if component == "sensor":
        try:
            value = float(text)
        except ValueError:
            raise EsphomeError(f"payload: {text[:20]!r} is not a number") from None
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise EsphomeError(f"payload: {text[:20]!r} is not finite")
    elif text in ("ON", "OFF"):
        value = 1.0 if text == "ON" else 0.0
    else:
        raise EsphomeError(f"payload: {text[:20]!r} is not ON or OFF")
    return EsphomeState(site_id, device_id, component, object_id, value)
