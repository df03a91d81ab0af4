"""Devices, dead letters (admins and supervisors) and SLA performance: read-only pages over
the same store reads and permissions as the API."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from gateway.api.deps import RuntimeDep, site_scope
from gateway.api.permissions import Permission
from gateway.auth import Principal
from gateway.console.deps import page
from gateway.console.i18n import Translator
from gateway.console.render import render, translator
from gateway.sla_report import build_report

router = APIRouter(prefix="/console", tags=["console"])

DEVICE_LIMIT = 500
DEAD_LETTER_LIMIT = 200
SLA_DAYS = (1, 7, 30)
"""Report windows the SLA page offers."""


def _health_rows(health: dict[str, object] | None) -> dict[str, object]:
    """The heartbeat fields the devices page shows (fps and inference of the first camera)."""
    if not health:
        return dict.fromkeys(("fps", "inference_ms", "outbox_depth", "model", "software"))
    cameras = health.get("cameras")
    first = cameras[0] if isinstance(cameras, list) and cameras else {}
    found = health.get("model")
    model = found if isinstance(found, dict) else None
    return {
        "fps": first.get("fps") if isinstance(first, dict) else None,
        "inference_ms": first.get("inference_ms_p50") if isinstance(first, dict) else None,
        "outbox_depth": health.get("outbox_depth"),
        "model": f"{model.get('name')} {model.get('version')}" if model else None,
        "software": health.get("software_version"),
    }


@router.get("/devices", response_class=HTMLResponse)
async def devices(
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(page(Permission.READ_DEVICES))],
) -> HTMLResponse:
    """Online state, last heartbeat, fps, inference time, outbox depth, model version, and a
    sensor's latest readings (when telemetry runs)."""
    found = await asyncio.to_thread(
        runtime.store.devices.list_devices, site_scope(principal), offset=0, limit=DEVICE_LIMIT
    )
    latest: dict[str, list[tuple[str, float]]] = {}
    telemetry = runtime.telemetry
    if telemetry is not None:
        for device in found:
            if device.kind != "camera":
                values = await asyncio.to_thread(telemetry.sqlite.latest, device.device_id)
                latest[device.device_id] = [(v.series, v.value) for v in values][:6]
    rows = [(d, _health_rows(d.health)) for d in found]
    return render(request, "devices.html", {"rows": rows, "latest": latest})


@router.get("/dead-letters", response_class=HTMLResponse)
async def dead_letters(
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(page(Permission.READ_DEAD_LETTERS))],
) -> HTMLResponse:
    """What devices sent that was refused, and why, newest first."""
    found = await asyncio.to_thread(
        runtime.store.inbox.list_dead_letters,
        site_scope(principal),
        offset=0,
        limit=DEAD_LETTER_LIMIT,
    )
    return render(request, "dead_letters.html", {"letters": found})


def bin_labels(t: Translator, edges: tuple[float, ...]) -> list[str]:
    """Histogram labels: "≤ 5 分钟" … and "> 1 小时" for the last bin."""

    def human(seconds: float) -> str:
        if seconds >= 3600 and seconds % 3600 == 0:
            return t("unit.hours", n=int(seconds // 3600))
        return t("unit.minutes", n=int(seconds // 60))

    labels = [t("sla.up_to", d=human(edge)) for edge in edges]
    return [*labels, t("sla.over", d=human(edges[-1]))]


@router.get("/sla", response_class=HTMLResponse)
async def sla(
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(page(Permission.READ_FIGURES))],
    days: Annotated[int, Query(ge=1, le=30)] = 7,
) -> HTMLResponse:
    """Response and resolution time distributions, the share within the field's targets,
    and breach rates per grid and category, over the last `days`."""
    facts = await asyncio.to_thread(
        runtime.store.reports.sla_facts,
        sites=site_scope(principal),
        since=time.time() - days * 86400,
    )
    report = build_report(facts, runtime.settings.policies)
    t = translator(request)
    return render(
        request,
        "sla.html",
        {
            "report": report,
            "days": days,
            "windows": SLA_DAYS,
            "response_labels": bin_labels(t, report.response_bins_s),
            "resolution_labels": bin_labels(t, report.resolution_bins_s),
        },
    )
