"""Resident reports as the routes and console pages use them: one method per thing a page does.

Every public method checks what it can before it costs anything, in this order: the client
address's rate limit (memory), the place token (one HMAC), the form's fields, the
proof-of-work (one hash) and whether its challenge was spent (one read), the photos (decoded
and re-encoded: the expensive part), and last the database (challenge spent, the place's
hourly quota, the ticket). Synchronous: routes call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from gateway.lifecycle import TicketState
from gateway.models import Change
from gateway.residents import pow
from gateway.residents.models import (
    RESIDENT_CATEGORIES,
    CategoryChoice,
    ChallengePublic,
    Channel,
    OperatorReport,
    OperatorReportCreated,
    PlacePublic,
    RatingBody,
    RatingResult,
    ReportCreated,
    ResidentReportPublic,
    TrackingStep,
    TrackingView,
)
from gateway.residents.photos import CLEAN_TYPE, PhotoError, clean_photo
from gateway.residents.ratelimit import SlidingWindow, address_key
from gateway.residents.settings import ResidentSettings
from gateway.residents.tokens import (
    PlaceRef,
    derive_key,
    new_tracking_token,
    place_token,
    read_place_token,
    tracking_hash,
)
from gateway.sites import Place, SiteConfig
from gateway.sla import CategoryPolicy, TicketCategory
from gateway.store import ConflictError, NotFoundError, Store
from gateway.store.residents import (
    SPENT,
    FlaggedReport,
    NewReport,
    ReportRow,
)

_PHONE_CHARS = set("0123456789+- ")


class ReportNotFoundError(LookupError):
    """A place token or tracking token that names nothing (one answer for both: forged,
    malformed, or a place no longer in the site file)."""


class ReportRefusedError(ValueError):
    """A report refused; `kind` tells the route which status to answer."""

    def __init__(self, kind: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # rate_limited | invalid | proof | photo_type | photo_size
        self.retry_after_s = retry_after_s  # rate_limited: when the window lets one in


@dataclass(frozen=True)
class ReportForm:
    """The fields of the resident form (multipart), before checking."""

    category: str
    description: str
    phone: str | None
    challenge: str
    nonce: str


def tracking_path(token: str) -> str:
    """Where the resident page shows a report's progress (the console serves it)."""
    return f"/r/track/{quote(token)}"


def report_url(base_url: str, token: str) -> str:
    """The URL a place's QR code holds (the console's resident page for that place)."""
    return f"{base_url.rstrip('/')}/r/{quote(token)}"


class ResidentService:
    """Taking, tracking and rating resident reports."""

    def __init__(
        self,
        store: Store,
        sites: Mapping[str, SiteConfig],
        secret: str,
        policies: Mapping[TicketCategory, CategoryPolicy],
        settings: ResidentSettings,
    ) -> None:
        self.store = store
        self.sites = sites
        self.settings = settings
        self.policies = policies
        self._place_key = derive_key(secret, "place")
        self._pow_key = derive_key(secret, "pow")
        self._reports = SlidingWindow(
            settings.reports_per_address_per_hour, 3600.0, settings.addresses_tracked
        )
        self._reads = SlidingWindow(
            settings.reads_per_address_per_minute, 60.0, settings.addresses_tracked
        )

    # -- codes -------------------------------------------------------------------------

    def place_token(self, site_id: str, place_id: str) -> str:
        """The token in the QR code of a place."""
        return place_token(self._place_key, site_id, place_id)

    def qr_url(self, site_id: str, place_id: str) -> str:
        """The URL printed as a place's QR code."""
        return report_url(self.settings.public_base_url, self.place_token(site_id, place_id))

    def _place(self, token: str) -> tuple[SiteConfig, Place]:
        ref: PlaceRef | None = read_place_token(self._place_key, token)
        site = self.sites.get(ref.site_id) if ref is not None else None
        place = site.place(ref.place_id) if site is not None and ref is not None else None
        if site is None or place is None:
            raise ReportNotFoundError("this QR code is not valid here")
        return site, place

    def _limit_reads(self, client: str, now: float) -> None:
        key = address_key(client)
        if not self._reads.allow(key, now):
            raise ReportRefusedError(
                "rate_limited", "too many requests; wait a minute", self._reads.wait_s(key, now)
            )

    # -- the resident page ---------------------------------------------------------------

    def place(self, token: str, client: str, now: float) -> PlacePublic:
        """What the report page of a QR code shows, with a fresh challenge."""
        self._limit_reads(client, now)
        site, place = self._place(token)
        return PlacePublic(
            site_name=site.name,
            place_name=place.name,
            categories=[
                CategoryChoice(category=c, label=t) for c, t in RESIDENT_CATEGORIES.items()
            ],
            max_photos=self.settings.max_photos,
            max_photo_bytes=self.settings.max_photo_bytes,
            challenge=self._challenge(site.site_id, now),
        )

    def challenge(self, token: str, client: str, now: float) -> ChallengePublic:
        """Another challenge for a QR code's site (the last one expired or was spent)."""
        self._limit_reads(client, now)
        site, _ = self._place(token)
        return self._challenge(site.site_id, now)

    def _challenge(self, site_id: str, now: float) -> ChallengePublic:
        found = pow.issue(
            self._pow_key,
            site_id,
            now,
            bits=self.settings.pow_bits,
            ttl_s=self.settings.challenge_ttl_s,
        )
        return ChallengePublic(
            challenge=found.challenge, bits=found.bits, expires_at=found.expires_at
        )

    def allow_report(self, client: str, now: float) -> None:
        """Count a report attempt from `client` (before its body is read): ReportRefusedError
        ("rate_limited") over the hourly limit."""
        key = address_key(client)
        if not self._reports.allow(key, now):
            raise ReportRefusedError(
                "rate_limited",
                "too many reports from this connection; try again later",
                self._reports.wait_s(key, now),
            )

    def check_place(self, token: str) -> None:
        """ReportNotFoundError unless `token` is a valid QR code of a configured place."""
        self._place(token)

    def submit(
        self, token: str, form: ReportForm, photos: Sequence[bytes], now: float
    ) -> tuple[ReportCreated, list[Change]]:
        """Take a resident's report from a QR code (`allow_report` was called first)."""
        site, place = self._place(token)
        category, description, phone = self._fields(form.category, form.description, form.phone)
        if len(photos) > self.settings.max_photos:
            raise ReportRefusedError("invalid", f"photos: at most {self.settings.max_photos}")
        try:
            challenge_id = pow.verify(
                self._pow_key,
                form.challenge,
                form.nonce,
                site.site_id,
                now,
                min_bits=self.settings.pow_bits,
            )
        except pow.ProofError as exc:
            raise ReportRefusedError("proof", str(exc)) from None
        if self.store.residents.challenge_spent(
            challenge_id
        ):  # before the costly photos, not instead
            raise ConflictError(SPENT)
        cleaned = [self._photo(n, data) for n, data in enumerate(photos)]
        token_out = new_tracking_token()
        hashed = tracking_hash(token_out)
        assert hashed is not None
        _, changes = self.store.residents.create_report(
            _Draft(site, place, category, description, phone, Channel.QR, hashed, None).with_photos(
                cleaned
            ),
            self.policies[category],
            now,
            challenge_id=challenge_id,
            per_place_per_hour=site.residents.reports_per_place_per_hour,
        )
        return ReportCreated(
            tracking_token=token_out, tracking_path=tracking_path(token_out)
        ), changes

    def _photo(self, n: int, data: bytes) -> tuple[str, bytes]:
        if not data or len(data) > self.settings.max_photo_bytes:
            raise ReportRefusedError(
                "photo_size", f"photos[{n}]: 1 to {self.settings.max_photo_bytes} bytes"
            )
        try:
            return CLEAN_TYPE, clean_photo(data)
        except PhotoError as exc:
            raise ReportRefusedError("photo_type", f"photos[{n}]: {exc}") from None

    def _fields(
        self, category: str, description: str, phone: str | None
    ) -> tuple[TicketCategory, str, str | None]:
        try:
            chosen = TicketCategory(category)
        except ValueError:
            chosen = None
        if chosen not in RESIDENT_CATEGORIES:
            raise ReportRefusedError("invalid", "category: choose one from the list")
        assert chosen is not None
        text = description.strip()
        if not 1 <= len(text) <= self.settings.max_description_chars:
            raise ReportRefusedError(
                "invalid", f"description: 1 to {self.settings.max_description_chars} characters"
            )
        phone = (phone or "").strip() or None
        if phone is not None and (not 5 <= len(phone) <= 20 or set(phone) - _PHONE_CHARS):
            raise ReportRefusedError("invalid", "phone: 5 to 20 digits (+, - and spaces allowed)")
        return chosen, text, phone

    # -- operators (hotline, WeChat group) ------------------------------------------------

    def enter(
        self, site_id: str, body: OperatorReport, operator: str, now: float
    ) -> tuple[OperatorReportCreated, list[Change]]:
        """An operator enters a hotline call or WeChat-group report for `site_id` (the route
        checked the operator's role and site). ReportNotFoundError for an unknown place."""
        site = self.sites.get(site_id)
        place = site.place(body.place_id) if site is not None else None
        if site is None or place is None:
            raise ReportNotFoundError(f"place_id: {body.place_id!r} is not a place of {site_id}")
        if body.channel is Channel.QR:
            raise ReportRefusedError("invalid", "channel: hotline or wechat (qr is the residents')")
        category, description, phone = self._fields(
            body.category.value, body.description, body.phone
        )
        token_out = new_tracking_token()
        hashed = tracking_hash(token_out)
        assert hashed is not None
        ticket_id, changes = self.store.residents.create_report(
            _Draft(
                site, place, category, description, phone, body.channel, hashed, operator
            ).with_photos([]),
            self.policies[category],
            now,
            challenge_id=None,
            per_place_per_hour=None,
        )
        return OperatorReportCreated(
            ticket_id=ticket_id, tracking_token=token_out, tracking_path=tracking_path(token_out)
        ), changes

    # -- tracking and rating --------------------------------------------------------------

    def _report(self, token: str) -> ReportRow:
        hashed = tracking_hash(token)
        if hashed is None:
            raise ReportNotFoundError("no such report")
        try:
            return self.store.residents.report_by_tracking(hashed)
        except NotFoundError:
            raise ReportNotFoundError("no such report") from None

    def track(self, token: str, client: str, now: float) -> TrackingView:
        """A report's progress for its tracking link (no personal data of anyone)."""
        self._limit_reads(client, now)
        report = self._report(token)
        site = self.sites.get(report.site_id)
        place = site.place(report.place_id) if site is not None else None
        steps = self.store.residents.report_steps(report.ticket_id)
        resolved = report.state in (TicketState.RESOLVED.value, TicketState.CLOSED.value)
        return TrackingView(
            site_name=site.name if site is not None else report.site_id,
            place_name=place.name if place is not None else report.place_id,
            category=report.category,
            category_label=RESIDENT_CATEGORIES.get(report.category, report.category.value),
            state=report.state,
            reported_at=report.created_at,
            steps=[TrackingStep(at=at, step=step) for at, step in steps],
            rating=report.rating,
            can_rate=resolved and report.rating is None,
        )

    def report_of(self, ticket_id: int) -> ResidentReportPublic:
        """What the resident reported on a ticket, for staff (NotFoundError when the ticket
        is not a resident report; the caller checked the ticket's site)."""
        row = self.store.residents.report_of_ticket(ticket_id)
        site = self.sites.get(row["site_id"])
        place = site.place(row["place_id"]) if site is not None else None
        fields = {k: row[k] for k in ResidentReportPublic.model_fields if k in row}
        return ResidentReportPublic(
            **fields, place_name=place.name if place is not None else row["place_id"]
        )

    def flagged(self, sites: Sequence[str] | None) -> list[FlaggedReport]:
        """Low ratings flagged for supervisors (the console's list; `sites` None: all)."""
        return self.store.residents.flagged_reports(sites)

    def rate(
        self, token: str, body: RatingBody, client: str, now: float
    ) -> tuple[RatingResult, list[Change]]:
        """The resident's one rating of resolved work; a low one reopens the ticket or flags
        it for the supervisor, as the site file says."""
        self._limit_reads(client, now)
        report = self._report(token)
        site = self.sites.get(report.site_id)
        low = site is not None and body.rating <= site.residents.low_rating_at_or_below
        outcome, changes = self.store.residents.record_rating(
            report.ticket_id,
            body.rating,
            body.comment,
            now,
            low=site.residents.low_rating_action if site is not None and low else None,
            policy=self.policies[report.category],
        )
        return RatingResult(rating=body.rating, outcome=outcome), changes


@dataclass(frozen=True)
class _Draft:
    site: SiteConfig
    place: Place
    category: TicketCategory
    description: str
    phone: str | None
    channel: Channel
    hashed: str
    entered_by: str | None

    def with_photos(self, photos: Sequence[tuple[str, bytes]]) -> NewReport:
        return NewReport(
            site_id=self.site.site_id,
            place_id=self.place.place_id,
            place_name=self.place.name,
            zone_id=self.place.zone_id,
            grid_id=self.place.grid_id,
            category=self.category,
            description=self.description,
            phone=self.phone,
            channel=self.channel.value,
            tracking_hash=self.hashed,
            entered_by=self.entered_by,
            photos=photos,
        )
