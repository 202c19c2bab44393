"""The console's pages, one router each; :func:`mdm.steward.app.create_console`
includes them all."""

from __future__ import annotations

from fastapi import APIRouter

from mdm.steward.routes import auth, entities, quality, review, search, stewards

ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    review.router,
    entities.router,
    search.router,
    quality.router,
    stewards.router,
)
