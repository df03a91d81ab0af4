"""Sensor readings: a series over a time range in min/max/avg buckets, and the latest value
of every series of a device. Read from the embedded store; scoped like devices (a device of
another site is 404)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict

from gateway.api.deps import RuntimeDep, ensure_site, require
from gateway.api.permissions import Permission
from gateway.auth import Principal
from gateway.runtime import Runtime
from gateway.store import NotFoundError
from gateway.telemetry.service import TelemetryService

router = APIRouter(prefix="/api")

MAX_BUCKETS = 2000
"""Most buckets one query returns (a chart is a few hundred pixels wide)."""
Series = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BucketPublic(_Record):
    """One time bucket of a series."""

    start: float
    min: float
    max: float
    avg: float
    count: int


class SeriesPublic(_Record):
    """A series over a range."""

    device_id: str
    series: str
    start: float
    end: float
    bucket_s: float
    buckets: list[BucketPublic]


class LatestPublic(_Record):
    """The newest value of one series."""

    series: str
    ts: float
    value: float


async def _telemetry_of(runtime: Runtime, principal: Principal, device_id: str) -> TelemetryService:
    try:
        device = await asyncio.to_thread(runtime.store.devices.get, device_id)
    except NotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found") from None
    ensure_site(principal, device.site_id)
    if runtime.telemetry is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "telemetry is disabled on this gateway")
    return runtime.telemetry


@router.get(
    "/devices/{device_id}/metrics/{series}", response_model=SeriesPublic, tags=["telemetry"]
)
async def series_buckets(
    device_id: str,
    series: Series,
    *,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_DEVICES))],
    # A NaN bound slips past every comparison below and came back as a 200 with nulls.
    start: Annotated[
        float | None, Query(allow_inf_nan=False, description="Epoch s; default end - 1 h.")
    ] = None,
    end: Annotated[
        float | None, Query(allow_inf_nan=False, description="Epoch s; default now.")
    ] = None,
    bucket_s: Annotated[float, Query(ge=1, le=86_400, description="Bucket width, s.")] = 60,
) -> SeriesPublic:
    """Min, max and mean of one series (``port2_temperature``) per bucket over [start, end)."""
    telemetry = await _telemetry_of(runtime, principal, device_id)
    end = time.time() if end is None else end
    start = end - 3600 if start is None else start
    if end <= start:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "end: must be after start")
    if (end - start) / bucket_s > MAX_BUCKETS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"bucket_s: at most {MAX_BUCKETS} buckets per query; use at least "
            f"{(end - start) / MAX_BUCKETS:.0f} s",
        )
    found = await asyncio.to_thread(
        telemetry.sqlite.buckets, device_id, series, start, end, bucket_s
    )
    return SeriesPublic(
        device_id=device_id,
        series=series,
        start=start,
        end=end,
        bucket_s=bucket_s,
        buckets=[
            BucketPublic(start=b.start, min=b.min, max=b.max, avg=b.avg, count=b.count)
            for b in found
        ],
    )


@router.get("/devices/{device_id}/latest", response_model=list[LatestPublic], tags=["telemetry"])
async def latest_values(
    device_id: str,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_DEVICES))],
) -> list[LatestPublic]:
    """The newest value of every series of a device."""
    telemetry = await _telemetry_of(runtime, principal, device_id)
    found = await asyncio.to_thread(telemetry.sqlite.latest, device_id)
    return [LatestPublic(series=x.series, ts=x.ts, value=x.value) for x in found]
