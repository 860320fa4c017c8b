"""Liveness and readiness: open to everyone, no token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/api/health")
async def health(request: Request) -> dict[str, str]:
    """Ok when the API can reach its store."""
    async with request.app.state.sessions() as session:
        await session.execute(text("SELECT 1"))
    return {"status": "ok"}
