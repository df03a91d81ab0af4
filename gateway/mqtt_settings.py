"""The `mqtt` section of the gateway settings (``GUANJIA_GATEWAY_MQTT__*``): how the ingest
connects to the broker, under which identity, and what each session subscribes to (the
gateway's, the telemetry session's, each ingest worker's)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from contract.topics import DEVICE_CHANNELS, Channel, check_segment, subscription
from gateway.telemetry.esphome import subscriptions as esphome_filters

DEFAULT_CLIENT_ID = "guanjia-gateway-1"
"""The session id of a gateway without a broker account (a development broker)."""


WORKER_SHARE_GROUP = "guanjia-ingest"
"""The shared group of ingest workers when `share_group` is unset: the gateway process's
own subscriptions stay plain (kept across a broker restart), only the workers share."""


class MqttSettings(BaseModel):
    """How the ingest connects to the broker and what it subscribes to.

    The client id is the broker username: every broker config we ship sets
    ``use_username_as_clientid``, so a client id differing from the username would be
    silently replaced by the broker, and two replicas sharing one account would keep
    kicking each other off. Give each replica its own account (``gateway-1``, …) and leave
    `client_id` unset; it is derived from the username. Without a username (a development
    broker) `client_id` names the persistent session and defaults to ``guanjia-gateway-1``.
    """

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Broker host name.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port.")
    username: str | None = Field(
        default=None, description="This replica's own broker account; also its client id."
    )
    password: SecretStr | None = Field(default=None, description="Its password (never logged).")
    client_id: str | None = Field(
        default=None,
        description="Persistent-session id. Derived from the username (an explicit value "
        "must equal it); without a username, defaults to guanjia-gateway-1.",
    )
    sites: list[str] = Field(
        default_factory=list,
        description="Sites this replica ingests (plain persistent subscriptions); empty = "
        "every site. Several replicas: give each a disjoint list covering every site.",
    )
    share_group: str | None = Field(
        default=None,
        description="Shared-subscription group ($share/<group>/...). Off by default: "
        "Mosquitto 2.0 and EMQX lose shared subscriptions on a broker restart.",
    )
    telemetry_session: bool = Field(
        default=True,
        description="Ingest sensor telemetry (TelemetryBatch, ESPHome topics) on a second "
        "session of its own, so a flood of readings never queues in front of an event. "
        "With a username it needs telemetry_username (a second gateway account).",
    )
    telemetry_username: str | None = Field(
        default=None, description="The telemetry session's broker account (e.g. gateway-1-t)."
    )
    telemetry_password: SecretStr | None = Field(
        default=None, description="Its password (never logged)."
    )
    telemetry_protocol: Literal["5", "3.1.1"] = Field(
        default="3.1.1",
        description="MQTT version of the telemetry session (without share_group; with one it "
        "follows protocol). 3.1.1: paho reads and acknowledges a PUBLISH without an MQTT 5 "
        "properties object, ~20% of the receive cost; retained ESPHome states replay on each "
        "reconnect and are stored once (docs/sensors.md).",
    )
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description='MQTT version. "3.1.1" only for the embedded broker (amqtt): a persistent '
        "session kept until the broker stops, no retain-as-published (a retained event "
        "published live is not recognised as retained) and no shared subscriptions.",
    )
    keepalive_s: int = Field(default=30, ge=5, description="MQTT keepalive.")
    reconnect_s: float = Field(default=1.0, gt=0, description="Pause before reconnecting.")
    batch_max: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Most messages committed in one transaction (the broker's limit on "
        "unacknowledged QoS 1 messages per client can cap a batch too).",
    )
    batch_linger_s: float = Field(
        default=0.0,
        ge=0,
        le=0.1,
        description="Wait this long for more messages before committing a short batch.",
    )
    ingest_processes: int = Field(
        default=1,
        ge=1,
        le=8,
        description="1: the gateway process ingests everything. N > 1: N worker processes "
        "(one core each) share the DetectionEvent subscription ($share/<share_group, or "
        "guanjia-ingest>/…) and the gateway process keeps the other channels (with a "
        "username, worker N logs in as <username>-wN). See docs/gateway.md, 'Ingest on "
        "several cores'.",
    )
    telemetry_processes: int = Field(
        default=1,
        ge=1,
        le=2,
        description="1: the gateway process receives and applies readings. 2: a receiver "
        "process holds the telemetry session (receives, publishes the Acks, acknowledges to "
        "the broker after the commit) while the gateway process applies the batches, in "
        "order, with the sensor rules' state: two cores. Batches are then at most "
        "batch_max / 2 messages, two in flight: the broker's max_inflight_messages must be "
        "at least batch_max for them to overlap. Needs the telemetry session "
        "(docs/sensors.md, 'Two cores').",
    )

    @model_validator(mode="after")
    def _one_identity(self) -> MqttSettings:
        if self.username is not None:
            check_segment(self.username, "mqtt.username")
            if self.client_id is not None and self.client_id != self.username:
                raise ValueError(
                    f"mqtt.client_id: must equal mqtt.username ({self.username!r}) or be "
                    "left unset: the broker uses the username as the client id"
                )
        elif self.client_id is not None:
            check_segment(self.client_id, "mqtt.client_id")
        if self.telemetry_username is not None:
            check_segment(self.telemetry_username, "mqtt.telemetry_username")
            if self.telemetry_username == self.username:
                raise ValueError(
                    "mqtt.telemetry_username: must differ from mqtt.username (the broker "
                    "uses the username as the client id: one would kick the other off)"
                )
        if self.protocol != "5" and self.share_group is not None:
            raise ValueError("mqtt.share_group: shared subscriptions need MQTT 5 (protocol 5)")
        for site in self.sites:
            check_segment(site, "mqtt.sites")
        if len(set(self.sites)) != len(self.sites):
            raise ValueError("mqtt.sites: each site once")
        if self.telemetry_processes > 1 and not self.telemetry_split:
            raise ValueError(
                "mqtt.telemetry_processes: 2 needs the telemetry session of its own "
                "(mqtt.telemetry_session true, and mqtt.telemetry_username when "
                "mqtt.username is set)"
            )
        return self

    @property
    def session_id(self) -> str:
        """The client id this replica connects with (its username when it has one)."""
        return self.username or self.client_id or DEFAULT_CLIENT_ID

    @property
    def subscriptions(self) -> list[str]:
        """The filters actually subscribed: every device channel of each configured site
        (or of every site), shared when a group is set."""
        filters = [f for site in self.sites or ["+"] for f in _device_filters(site)]
        if self.share_group:
            return [f"$share/{self.share_group}/{f}" for f in filters]
        return filters

    @property
    def telemetry_split(self) -> bool:
        """Whether telemetry has its own session (see `telemetry_session`)."""
        return self.telemetry_session and (
            self.username is None or self.telemetry_username is not None
        )

    def _shared(self, filters: list[str]) -> list[str]:
        if self.share_group:
            return [f"$share/{self.share_group}/{f}" for f in filters]
        return filters

    @property
    def event_filters(self) -> list[str]:
        """The main session's filters: every device channel (and ESPHome's topics), less
        what the telemetry session takes when there is one."""
        if not self.telemetry_split:
            return self.subscriptions + self.esphome_subscriptions
        telemetry = set(self.telemetry_filters)
        return [f for f in self.subscriptions if f not in telemetry]

    @property
    def telemetry_filters(self) -> list[str]:
        """The telemetry session's filters: TelemetryBatches and ESPHome's topics."""
        sites = self.sites or ["+"]
        mine = [subscription(Channel.TELEMETRY, site_id=site) for site in sites]
        return self._shared(mine) + self.esphome_subscriptions

    def telemetry_connection(self) -> MqttSettings:
        """Settings of the telemetry session: its own account, or (no username, a
        development broker) the client id with ``-telemetry`` appended."""
        protocol = self.protocol if self.share_group else self.telemetry_protocol
        if self.username is not None:
            return self.model_copy(
                update={
                    "username": self.telemetry_username,
                    "password": self.telemetry_password,
                    "client_id": None,
                    "protocol": protocol,
                }
            )
        return self.model_copy(
            update={"client_id": f"{self.session_id}-telemetry", "protocol": protocol}
        )

    def ingest_worker(self, index: int) -> MqttSettings:
        """Settings of ingest worker `index` (1…ingest_processes): its own session
        (``<session id>-w<index>``, its own broker account when there are accounts) on the
        shared DetectionEvent subscription only. Everything whose order matters per device
        (status, heartbeats) or that has its own pipeline (telemetry, snapshots, command
        results) stays with the gateway process, so only events can be applied out of
        order across processes, and the ticket rules give one track's start, updates and
        end the same outcome in any order (tests/gateway/test_ingest_workers.py)."""
        name = f"{self.session_id}-w{index}"
        return self.model_copy(
            update={
                "username": name if self.username is not None else None,
                "client_id": None if self.username is not None else name,
                "telemetry_session": False,
                "telemetry_processes": 1,
                "ingest_processes": 1,
            }
        )

    @property
    def worker_filters(self) -> list[str]:
        """What an ingest worker subscribes to: every site's (or its sites') events."""
        group = self.share_group or WORKER_SHARE_GROUP
        return [
            f"$share/{group}/{subscription(Channel.EVENT, site_id=s)}" for s in self.sites or ["+"]
        ]

    def gateway_filters(self, filters: list[str]) -> list[str]:
        """The gateway process's `filters`, less the events when workers take them
        (``ingest_processes > 1``)."""
        if self.ingest_processes == 1:
            return filters
        events = {subscription(Channel.EVENT, site_id=s) for s in self.sites or ["+"]}
        return [f for f in filters if f.split("/", 2)[-1] not in events and f not in events]

    @property
    def esphome_subscriptions(self) -> list[str]:
        """Stock ESPHome nodes' state and status topics, under ``esphome/{site}/{device}/``
        (`gateway.telemetry.esphome`), per configured site, shared when a group is set."""
        filters = [f for site in self.sites or ["+"] for f in esphome_filters(site)]
        if self.share_group:
            return [f"$share/{self.share_group}/{f}" for f in filters]
        return filters


def _device_filters(site_id: str) -> list[str]:
    return [subscription(ch, site_id=site_id) for ch in sorted(DEVICE_CHANNELS)]
