"""A golden record: its attributes with their provenance, linked source records and
history; and what senior stewards do to it (merge, split, override)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mdm.domain.standards import STANDARDS
from mdm.exceptions import BadRequest
from mdm.services import review
from mdm.services.history import entity_links, get_entity, history
from mdm.services.merge import preview_merge
from mdm.steward.deps import Ctx, Page, SeniorForm, SeniorPage, ViewerPage
from mdm.steward.params import row_id
from mdm.steward.rendering import PREFIX

router = APIRouter()


def _entity_data(c: Ctx, canonical_id: str) -> dict[str, Any]:
    view = get_entity(c.db, canonical_id)
    links = entity_links(c.db, view)
    order = list(STANDARDS[view.entity_type].model_fields)
    attrs = [a for a in order if a in view.attributes or a in view.provenance]
    attrs += sorted(set(view.attributes) - set(attrs))
    return {
        "view": view,
        "attrs": attrs,
        "records": sorted(links.records, key=lambda r: (r.system, r.key)),
        "history": list(reversed(history(c.db, view.canonical_id))),
        "redirects": links.redirects,
        "overrides": links.overrides,
        "fields": order,
    }


def parse_value(text: str) -> Any:
    """An override's value: JSON for structured values (an address), else the text;
    empty means "no value"."""
    text = text.strip()
    if not text:
        return None
    if text[0] in "{[":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"the value is not valid JSON: {exc}") from None
    return text


@router.get("/entity/{canonical_id}", response_class=HTMLResponse)
def entity(page: ViewerPage, canonical_id: str) -> Response:
    with page.open() as c:
        data = _entity_data(c, canonical_id)
        c.audit("console.view_entity", [data["view"].canonical_id])
        return c.render("entity.html", **data)


@router.get("/entity/{canonical_id}/merge", response_class=HTMLResponse)
def merge_preview(page: SeniorPage, canonical_id: str, other: str = "") -> Response:
    with page.open() as c:
        other = other.strip()
        if not other:
            raise BadRequest("give the canonical ID of the other golden record")
        preview = preview_merge(c.db, canonical_id, other)
        survivor = get_entity(c.db, canonical_id)
        loser = get_entity(c.db, other)
        order = list(STANDARDS[survivor.entity_type].model_fields)
        names = set(preview.attributes) | set(survivor.attributes) | set(loser.attributes)
        attrs = [a for a in order if a in names]
        return c.render(
            "merge_preview.html", survivor=survivor, loser=loser, preview=preview, attrs=attrs
        )


@router.post("/entity/{canonical_id}/merge")
def merge(
    page: SeniorForm, canonical_id: str, other: str = Form(...), reason: str = Form("")
) -> Response:
    with page.open() as c:
        result = review.steward_merge(
            c.db, canonical_id, other.strip(), actor=c.user.steward.actor, reason=reason
        )
    return RedirectResponse(f"{PREFIX}/entity/{result.survivor_id}", status_code=303)


@router.post("/entity/{canonical_id}/split")
async def split(request: Request, page: SeniorForm, canonical_id: str) -> Response:
    # The record IDs are read as sent and checked after the login, token and role.
    form = await request.form()
    record_ids = [str(v) for v in form.getlist("record_id")]
    reason = str(form.get("reason") or "")
    result: Response = await run_in_threadpool(_split, page, canonical_id, record_ids, reason)
    return result


def _split(page: Page, canonical_id: str, values: list[str], reason: str) -> Response:
    with page.open() as c:
        record_ids = [row_id("record_id", v) for v in values]
        into = review.steward_split(
            c.db, canonical_id, record_ids, actor=c.user.steward.actor, reason=reason
        )
    return RedirectResponse(f"{PREFIX}/entity/{into}", status_code=303)


@router.post("/entity/{canonical_id}/override")
def override(
    page: SeniorForm,
    canonical_id: str,
    attribute: str = Form(...),
    value: str = Form(""),
    reason: str = Form(""),
) -> Response:
    with page.open() as c:
        review.steward_override(
            c.db,
            canonical_id,
            attribute,
            parse_value(value),
            actor=c.user.steward.actor,
            reason=reason,
        )
    return RedirectResponse(f"{PREFIX}/entity/{canonical_id}", status_code=303)
