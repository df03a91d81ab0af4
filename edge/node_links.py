"""How NODE.yaml's ``mqtt`` and ``actions`` sections become the node's outward links.

Translation only: `link_options` opens no connection, and `action_sinks` builds the sinks the
rules fire into (an HTTP sink starts its worker thread; the caller closes those at shutdown).
`edge.app` wires the results into the running node.
"""

from __future__ import annotations

import os

from pydantic import SecretStr

from contract import Channel, subscription
from edge.actions import (
    ActionSink,
    FanOutActionSink,
    HttpActionSink,
    LoggingActionSink,
    MqttActionSink,
    Publisher,
)
from edge.link_options import LinkOptions
from edge.node_config import (
    HttpActionSettings,
    LogActionSettings,
    MqttActionSettings,
    NodeConfig,
)


class MissingTokenError(RuntimeError):
    """An HTTP action's token variable is named in NODE.yaml but not set."""


def link_options(
    config: NodeConfig, *, password: SecretStr | None, software_version: str
) -> LinkOptions:
    """The MQTT link's settings: identity, TLS files, timings, and the node's command topic."""
    tls = config.mqtt.tls
    return LinkOptions(
        host=config.mqtt.host,
        port=config.mqtt.port,
        site_id=config.site_id,
        device_id=config.device_id,
        software_version=software_version,
        username=config.mqtt_username,
        password=password,
        tls=tls is not None,
        ca_file=None if tls is None or tls.ca_file is None else str(tls.ca_file),
        cert_file=None if tls is None or tls.cert_file is None else str(tls.cert_file),
        key_file=None if tls is None or tls.key_file is None else str(tls.key_file),
        keepalive_s=config.mqtt.keepalive_s,
        reconnect_min_s=config.mqtt.reconnect_min_s,
        reconnect_max_s=config.mqtt.reconnect_max_s,
        inflight=config.mqtt.inflight,
        session_expiry_s=config.mqtt.session_expiry_s,
        protocol=config.mqtt.protocol,
        subscriptions=(
            subscription(Channel.CMD, site_id=config.site_id, device_id=config.device_id),
        ),
    )


def action_sinks(
    config: NodeConfig, publisher: Publisher
) -> tuple[ActionSink, list[HttpActionSink]]:
    """The sink the rules fire into, and the HTTP sinks among them (to close at shutdown).

    Raises `MissingTokenError` when an HTTP sink's token variable is named but not set: a controller
    that rejects every call would only show up as failed actions, long after start-up.
    """
    sinks: list[ActionSink] = []
    http: list[HttpActionSink] = []
    for settings in config.actions:
        if isinstance(settings, LogActionSettings):
            sinks.append(LoggingActionSink())
        elif isinstance(settings, MqttActionSettings):
            sinks.append(
                MqttActionSink(
                    publisher,
                    settings.topic,
                    site_id=config.site_id,
                    device_id=config.device_id,
                    qos=settings.qos,
                )
            )
        elif isinstance(settings, HttpActionSettings):
            token = os.environ.get(settings.token_env) if settings.token_env else None
            if settings.token_env and not token:
                raise MissingTokenError(f"environment variable {settings.token_env} is not set")
            sink = HttpActionSink(
                settings.url,
                site_id=config.site_id,
                device_id=config.device_id,
                timeout_s=settings.timeout_s,
                token=token,
                queue_size=settings.queue_size,
            )
            http.append(sink)
            sinks.append(sink)
    return (sinks[0] if len(sinks) == 1 else FanOutActionSink(sinks)), http
