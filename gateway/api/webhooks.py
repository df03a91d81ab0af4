"""Webhook routes: group-chat bots notified of new tickets and escalations (admins only,
since a webhook without a grid hears every site)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, UrlConstraints

from gateway.api.deps import RuntimeDep, require
from gateway.api.permissions import Permission
from gateway.auth import Principal
from gateway.sla import TicketCategory
from gateway.store import NotFoundError

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


class WebhookCreate(BaseModel):
    """A chat-bot webhook for a grid and/or category."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[HttpUrl, UrlConstraints(max_length=500)]
    flavour: str = Field(pattern="^(wecom|dingtalk|feishu)$")
    grid_id: str | None = Field(default=None, max_length=64)
    category: TicketCategory | None = None


class WebhookCreated(BaseModel):
    """The new webhook's id."""

    id: int


@router.post("", response_model=WebhookCreated, status_code=201)
async def add_webhook(
    body: WebhookCreate,
    runtime: RuntimeDep,
    _principal: Annotated[Principal, Depends(require(Permission.WRITE_WEBHOOKS))],
) -> WebhookCreated:
    """Notify a WeCom / DingTalk / Feishu group of new tickets and escalations."""
    if body.grid_id is not None:
        try:
            await asyncio.to_thread(runtime.store.grids.get_grid, body.grid_id)
        except NotFoundError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    hook_id = await asyncio.to_thread(
        runtime.store.webhooks.add_webhook,
        str(body.url),
        body.flavour,
        body.grid_id,
        body.category.value if body.category else None,
    )
    return WebhookCreated(id=hook_id)
