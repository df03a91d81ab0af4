"""The JSON messages on the wire and the model manifest, as pydantic v2 models.

Every message carries the envelope fields `schema`, `msg_id`, `ts`, `site_id` and `device_id`:

- `schema` is ``guanjia.<kind>/<major>``. Models forbid unknown fields, so any added field is
  a new major; receivers accept exactly the majors they know (see docs/contract.md).
- `msg_id` is unique per publication *attempt's content*: a redelivery of the same message
  carries the same `msg_id`, so receivers drop duplicates by it.
- `ts` is seconds since the Unix epoch (UTC), as a float.

Models are frozen: a message, once built, is a value.
"""

from __future__ import annotations

import math
import re
import uuid
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)

Segment = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
"""An id that is also a legal MQTT topic segment (site, device, camera, zone, command)."""

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{8,128}$")]
"""A globally unique id (msg_id, event_id, command_id): uuid hex or similar."""


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


INT32_MAX = 2**31 - 1
"""Counters and sequence numbers the gateway stores in 32-bit integer columns."""

JSON_INT_MAX = 2**53 - 1
"""Largest integer every JSON reader (JavaScript included) represents exactly."""

Int32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
Count = Annotated[int, Field(ge=0, le=JSON_INT_MAX)]

Finite = Annotated[float, AfterValidator(_finite)]
Timestamp = Annotated[float, Field(ge=0), AfterValidator(_finite)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0), AfterValidator(_finite)]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def new_msg_id() -> str:
    """A fresh random message id (uuid4 hex)."""
    return uuid.uuid4().hex


class EventCategory(StrEnum):
    """What a zone rule found. The gateway opens one kind of ticket per category."""

    ILLEGAL_PARKING = "illegal_parking"
    FIRE_LANE_BLOCKED = "fire_lane_blocked"
    EBIKE_IN_ELEVATOR = "ebike_in_elevator"
    LITTER = "litter"
    ZOMBIE_VEHICLE = "zombie_vehicle"
    """A vehicle stationary in a watched area for days (僵尸车); low urgency."""
    THROWN_OBJECT = "thrown_object"
    """An object falling from a building's windows (高空抛物); urgent."""


class ObjectCategory(StrEnum):
    """Our object categories; a model manifest maps its classes onto these."""

    VEHICLE = "vehicle"
    TWO_WHEELER = "two_wheeler"
    PERSON = "person"
    LITTER_CANDIDATE = "litter_candidate"


class Severity(StrEnum):
    """How fast a person must look. Urgent items are never dropped from an edge outbox."""

    URGENT = "urgent"
    NORMAL = "normal"
    LOW = "low"


class EventPhase(StrEnum):
    """Lifecycle of one DetectionEvent id: start → update* → end."""

    START = "start"
    UPDATE = "update"
    END = "end"


class CommandStatus(StrEnum):
    """Outcome of one command."""

    OK = "ok"
    ERROR = "error"
    REJECTED = "rejected"
    UNSUPPORTED = "unsupported"
    EXPIRED = "expired"


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


def _schema_field(value: str) -> object:
    return Field(default=value, alias="schema", description="guanjia.<kind>/<major>")


class Message(_Strict):
    """Envelope shared by every JSON message. Subclasses set `SCHEMA`."""

    SCHEMA: ClassVar[str] = ""

    schema_: str = Field(alias="schema", description="guanjia.<kind>/<major>")
    msg_id: Identifier = Field(default_factory=new_msg_id, description="Unique per message.")
    ts: Timestamp = Field(description="Seconds since the epoch (UTC) when the message was made.")
    site_id: Segment
    device_id: Segment


class ModelRef(_Strict):
    """Which model produced something."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    version: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class BoxEvidence(_Strict):
    """One detection of the tracked object: box in relative image coordinates (0..1)."""

    ts: Timestamp
    box: tuple[Unit, Unit, Unit, Unit] = Field(
        description="[x1, y1, x2, y2], relative to the frame"
    )
    score: Unit

    @model_validator(mode="after")
    def _ordered(self) -> BoxEvidence:
        x1, y1, x2, y2 = self.box
        if not (x1 <= x2 and y1 <= y2):
            raise ValueError("box must be [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2")
        return self


class SnapshotRef(_Strict):
    """Points at a JPEG sent as raw bytes on ``.../snapshot/{snapshot_id}``."""

    snapshot_id: Segment
    sha256: Annotated[str, StringConstraints(pattern=_SHA256.pattern)]
    size_bytes: Annotated[int, Field(gt=0, le=1024 * 1024)] = Field(
        description="At most MAX_SNAPSHOT_BYTES (1 MiB)."
    )
    width: Annotated[int, Field(gt=0, le=16384)]
    height: Annotated[int, Field(gt=0, le=16384)]
    content_type: Literal["image/jpeg"] = "image/jpeg"


class DetectionEvent(Message):
    """A zone rule's finding, published at start, on rate-limited updates, and at end."""

    SCHEMA: ClassVar[str] = "guanjia.detection_event/1"
    schema_: Literal["guanjia.detection_event/1"] = _schema_field(SCHEMA)  # type: ignore[assignment]

    event_id: Identifier = Field(description="Stable across start, update and end.")
    phase: EventPhase
    seq: Int32 = Field(description="0 at start, +1 per publication.")
    category: EventCategory
    severity: Severity
    camera_id: Segment
    zone_id: Segment
    track_id: Int32
    object_class: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    object_category: ObjectCategory
    score: Unit = Field(description="Best detector score of the track so far.")
    boxes: list[BoxEvidence] = Field(default_factory=list, max_length=32)
    dwell_s: NonNegative = Field(description="Seconds the condition has held.")
    started_at: Timestamp = Field(description="When the object entered the zone.")
    ended_at: Timestamp | None = None
    model: ModelRef
    snapshot: SnapshotRef | None = None

    @model_validator(mode="after")
    def _end_has_time(self) -> DetectionEvent:
        if (self.phase is EventPhase.END) != (self.ended_at is not None):
            raise ValueError("ended_at is set exactly when phase is 'end'")
        return self


MAX_HEARTBEAT_INTERVAL_S = 3600.0
"""Longest heartbeat interval a device may declare (the gateway's offline clock uses it)."""


class CameraHealth(_Strict):
    """Health of one camera pipeline over the last heartbeat interval."""

    camera_id: Segment
    online: bool
    fps: NonNegative
    frames_read: Count
    frames_dropped: Count
    reconnects: Count
    inference_ms_p50: NonNegative | None = None
    inference_ms_p95: NonNegative | None = None
    detector_duty: Unit = Field(description="Detector calls ÷ frames processed.")


class Heartbeat(Message):
    """Periodic health of a node."""

    SCHEMA: ClassVar[str] = "guanjia.heartbeat/1"
    schema_: Literal["guanjia.heartbeat/1"] = _schema_field(SCHEMA)  # type: ignore[assignment]

    interval_s: Annotated[float, Field(ge=1.0, le=MAX_HEARTBEAT_INTERVAL_S)] = Field(
        description="Seconds to the next heartbeat; bounded so a device cannot declare itself "
        "never late."
    )
    uptime_s: NonNegative
    software_version: Annotated[str, StringConstraints(max_length=32)]
    cameras: list[CameraHealth] = Field(default_factory=list, max_length=64)
    outbox_depth: Count = 0
    outbox_dropped: Count = 0
    cpu_load_1m: NonNegative | None = None
    soc_temp_c: Finite | None = None
    disk_free_mb: NonNegative | None = None
    model: ModelRef | None = None
    config_version: Annotated[str, StringConstraints(max_length=64)] | None = None


class Status(Message):
    """Retained availability. The LWT copy is built at connect time, so its `ts` is then."""

    SCHEMA: ClassVar[str] = "guanjia.status/1"
    schema_: Literal["guanjia.status/1"] = _schema_field(SCHEMA)  # type: ignore[assignment]

    state: Literal["online", "offline"]
    reason: Annotated[str, StringConstraints(max_length=200)] | None = None
    software_version: Annotated[str, StringConstraints(max_length=32)] | None = None


class TelemetryPoint(_Strict):
    """One sensor reading."""

    metric: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    value: Finite
    ts: Timestamp
    unit: Annotated[str, StringConstraints(max_length=16)] | None = None
    tags: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")],
        Annotated[str, StringConstraints(max_length=64)],
    ] = Field(default_factory=dict, max_length=16)


class TelemetryBatch(Message):
    """Readings from a sensor node (smoke/heat/CO detector, charging-pile monitor, …)."""

    SCHEMA: ClassVar[str] = "guanjia.telemetry_batch/1"
    schema_: Literal["guanjia.telemetry_batch/1"] = _schema_field(SCHEMA)  # type: ignore[assignment]

    sensor_kind: Segment
    points: list[TelemetryPoint] = Field(min_length=1, max_length=1000)


class Command(Message):
    """An instruction to one device. `site_id`/`device_id` name the target."""

    SCHEMA: ClassVar[str] = "guanjia.command/1"
    schema_: Literal["guanjia.command/1"] = _schema_field(SCHEMA)  # type: ignore[assignment]

    command_id: Identifier = Field(description="Executed at most once per device.")
    name: Segment = Field(description="Equals the topic's cmd/{name} segment.")
    args: dict[str, JsonValue] = Field(default_factory=dict)
    issued_by: Annotated[str, StringConstraints(max_length=64)] | None = None
    expires_at: Timestamp | None = None


class CommandResult(Message):
    """Exactly one answer per command id."""

    SCHEMA: ClassVar[str] = "guanjia.command_result/1"
    schema_: Literal["guanjia.command_result/1"] = _schema_field(SCHEMA)  # type: ignore[assignment]

    command_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    status: CommandStatus
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None
    detail: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _reason_unless_ok(self) -> CommandResult:
        if self.status is not CommandStatus.OK and not self.reason:
            raise ValueError("reason is required unless status is 'ok'")
        return self


MAX_ACK_IDS = 1000
"""Most ids one Ack names; the gateway splits larger commits into several acks."""


class Ack(Message):
    """The gateway's end-to-end acknowledgement to one device (`site_id`/`device_id` name it).

    Sent after the database commit that holds the messages' effects (or their dead letters,
    or found them already committed). A device deletes a queued message only when an Ack
    names it: `msg_ids` for events, telemetry batches and command results, `snapshot_ids`
    for snapshots.
    """

    SCHEMA: ClassVar[str] = "guanjia.ack/1"
    schema_: Literal["guanjia.ack/1"] = _schema_field(SCHEMA)  # type: ignore[assignment]

    msg_ids: list[Identifier] = Field(default_factory=list, max_length=MAX_ACK_IDS)
    snapshot_ids: list[Segment] = Field(default_factory=list, max_length=MAX_ACK_IDS)


class InputSpec(_Strict):
    """The model's input tensor."""

    name: Annotated[str, StringConstraints(min_length=1)] = "images"
    width: Annotated[int, Field(gt=0, le=4096)]
    height: Annotated[int, Field(gt=0, le=4096)]
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    channel_order: Literal["BGR", "RGB"] = "BGR"
    dtype: Literal["float32", "uint8"] = "float32"


class PreprocessSpec(_Strict):
    """How a frame becomes the input tensor: letterbox, then ``(pixel * scale - mean) / std``."""

    letterbox: bool = True
    align: Literal["top_left", "center"] = "top_left"
    pad_value: Annotated[int, Field(ge=0, le=255)] = 114
    scale: Annotated[float, Field(gt=0)] = 1.0
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None


class OutputSpec(_Strict):
    """The model's output tensor and how to decode it.

    ``yolox``: [1, N, 5+nc], rows (x, y, w, h, obj, cls...) in grid units, decoded with `strides`.
    ``ultralytics``: [1, 4+nc, N], rows (cx, cy, w, h, cls...) in input pixels (YOLOv8/YOLO11).
    """

    name: Annotated[str, StringConstraints(min_length=1)] = "output"
    format: Literal["yolox", "ultralytics"]
    strides: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [8, 16, 32])
    score_threshold: Unit = 0.3
    nms_iou: Unit = 0.45


class Manifest(_Strict):
    """Everything the edge needs to run a detection model, shipped beside its weights."""

    SCHEMA: ClassVar[str] = "guanjia.model_manifest/1"
    schema_: Literal["guanjia.model_manifest/1"] = _schema_field(SCHEMA)  # type: ignore[assignment]

    name: Segment
    version: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.+-]{1,32}$")]
    file: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
    sha256: Annotated[str, StringConstraints(pattern=_SHA256.pattern)]
    licence: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    source_url: str | None = None
    input: InputSpec
    preprocess: PreprocessSpec = Field(default_factory=PreprocessSpec)
    output: OutputSpec
    class_names: list[Annotated[str, StringConstraints(min_length=1)]] = Field(min_length=1)
    class_map: dict[str, ObjectCategory] = Field(
        description="Model class name → our object category; unmapped classes are ignored."
    )

    @model_validator(mode="after")
    def _map_known_classes(self) -> Manifest:
        unknown = sorted(set(self.class_map) - set(self.class_names))
        if unknown:
            raise ValueError(f"class_map names classes the model does not have: {unknown}")
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError("class_names has duplicates")
        return self

    @property
    def ref(self) -> ModelRef:
        """This model as a ModelRef for events and heartbeats."""
        return ModelRef(name=self.name, version=self.version)
