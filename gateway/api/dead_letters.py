"""Dead-letter routes: messages the ingest refused, with the reason."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends

from gateway.api.deps import RuntimeDep, require, site_scope
from gateway.api.params import Limit, Offset
from gateway.api.permissions import Permission
from gateway.auth import Principal
from gateway.models import DeadLetterPublic

router = APIRouter(prefix="/api/dead-letters", tags=["ingest"])


@router.get("", response_model=list[DeadLetterPublic])
async def list_dead_letters(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_DEAD_LETTERS))],
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[DeadLetterPublic]:
    """Refused messages of the caller's sites, newest first, with the reason."""
    return await asyncio.to_thread(
        runtime.store.inbox.list_dead_letters, site_scope(principal), offset=offset, limit=limit
    )
