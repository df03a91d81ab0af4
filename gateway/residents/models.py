"""What the resident routes take and serve (pydantic, extra="forbid"), and the short list of
categories a resident chooses from, in plain Chinese."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from gateway.sla import TicketCategory


class Channel(StrEnum):
    """How a report reached us."""

    QR = "qr"  # the resident's own phone, from a posted QR code
    HOTLINE = "hotline"  # 24 h hotline, entered by an operator
    WECHAT = "wechat"  # the WeChat group (有话好好说), entered by an operator


RESIDENT_CATEGORIES: dict[TicketCategory, str] = {
    TicketCategory.LITTER: "垃圾杂物",
    TicketCategory.ILLEGAL_PARKING: "乱停车",
    TicketCategory.FIRE_LANE_BLOCKED: "消防通道堵塞",
    TicketCategory.INDOOR_CHARGING: "楼道/飞线充电",
    TicketCategory.THROWN_OBJECT: "高空抛物",
    TicketCategory.FACILITY_REPAIR: "设施损坏报修",
    TicketCategory.NOISE: "噪音扰民",
    TicketCategory.OTHER_REPORT: "其他",
}
"""What a resident may choose, with the label the page shows."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CategoryChoice(_Record):
    """One entry of the category list."""

    category: TicketCategory
    label: str


class ChallengePublic(_Record):
    """A proof-of-work challenge: find `nonce` with SHA-256(challenge + ':' + nonce) starting
    with `bits` zero bits (docs/residents.md)."""

    challenge: str
    bits: int
    expires_at: int


class PlacePublic(_Record):
    """What the resident page needs for one QR code: where, what to choose, the challenge."""

    site_name: str
    place_name: str
    categories: list[CategoryChoice]
    max_photos: int
    max_photo_bytes: int
    challenge: ChallengePublic


class ReportCreated(_Record):
    """A report was taken: the tracking link is the resident's only way back to it."""

    tracking_token: str
    tracking_path: str


class OperatorReport(_Record):
    """A hotline call or WeChat-group message entered by an operator (photos: upload to the
    ticket afterwards through POST /api/tickets/{id}/photos)."""

    place_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,48}$")
    channel: Channel
    category: TicketCategory
    description: str = Field(min_length=1, max_length=1000)
    phone: str | None = Field(default=None, pattern=r"^[0-9+\- ]{5,20}$")


class OperatorReportCreated(_Record):
    """The ticket an operator's entry opened, and the tracking link to give the resident."""

    ticket_id: int
    tracking_token: str
    tracking_path: str


class TrackingStep(_Record):
    """One step of a ticket's progress (no names: who did it is not the resident's to see)."""

    at: float
    step: str  # reported | acknowledged | dispatched | in_progress | resolved | closed | reopened


class TrackingView(_Record):
    """A report's progress, as the tracking link shows it: no ticket id, no names, no phone,
    no text anyone wrote."""

    site_name: str
    place_name: str
    category: TicketCategory
    category_label: str
    state: str
    reported_at: float
    steps: list[TrackingStep]
    rating: int | None
    can_rate: bool


class RatingBody(_Record):
    """A resident's rating of resolved work."""

    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=500)


class RatingResult(_Record):
    """What became of a rating."""

    rating: int
    outcome: str  # recorded | reopened | flagged


class ResidentReportPublic(_Record):
    """What a resident reported, for staff on the ticket's page (the phone is for calling
    back; staff only, never on the tracking link)."""

    ticket_id: int
    site_id: str
    place_id: str
    place_name: str
    channel: Channel
    description: str
    phone: str | None
    entered_by: str | None
    created_at: float
    rating: int | None
    rating_comment: str | None
    rated_at: float | None
    flagged_at: float | None
