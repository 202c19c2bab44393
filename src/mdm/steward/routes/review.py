"""The review queue: the pending pairs, one pair with the reasons for its score,
and the decisions on it. A steward holds one reservation at a time; deciding takes
the next pair of the same filter."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from mdm.domain.clock import utcnow
from mdm.services import review
from mdm.steward import charts
from mdm.steward.deps import ConsoleSettings, ViewerForm, ViewerPage
from mdm.steward.i18n import translate
from mdm.steward.params import BANDS, RowId, queue_filter
from mdm.steward.rendering import PREFIX

router = APIRouter()


def _to_candidate(candidate_id: int | None, params: dict[str, str]) -> Response:
    query = f"?{urlencode(params)}" if params else ""
    if candidate_id is None:
        return RedirectResponse(f"{PREFIX}/review{query}", status_code=303)
    return RedirectResponse(f"{PREFIX}/review/{candidate_id}{query}", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(page: ViewerPage) -> Response:
    with page.open():
        pass
    return RedirectResponse(f"{PREFIX}/review", status_code=303)


@router.get("/review", response_class=HTMLResponse)
def queue(page: ViewerPage, entity_type: str = "", source: str = "", band: str = "") -> Response:
    with page.open() as c:
        flt, params = queue_filter(entity_type, source, band)
        total, rows = review.pending_queue(c.db, flt)
        facets = review.queue_facets(c.db)
        last = review.last_action(c.db, c.user.steward.actor)
        return c.render(
            "queue.html",
            total=total,
            rows=rows,
            facets=facets,
            params=params,
            bands=list(BANDS),
            can_undo=last is not None,
        )


@router.post("/review/next")
def take_next(
    page: ViewerForm,
    cfg: ConsoleSettings,
    entity_type: str = Form(""),
    source: str = Form(""),
    band: str = Form(""),
) -> Response:
    with page.open() as c:
        flt, params = queue_filter(entity_type, source, band)
        taken = review.take_next(
            c.db, c.user.steward.actor, flt, reserve_minutes=cfg.steward_reservation_minutes
        )
    return _to_candidate(taken, params)


@router.get("/review/{candidate_id}", response_class=HTMLResponse)
def candidate(
    page: ViewerPage,
    candidate_id: RowId,
    entity_type: str = "",
    source: str = "",
    band: str = "",
) -> Response:
    with page.open() as c:
        _flt, params = queue_filter(entity_type, source, band)
        view = review.candidate_view(c.db, candidate_id)
        # Stewards read personal data here: who looked at which pair is kept.
        c.audit(
            "console.view_candidate",
            [i for i in (view.left.canonical_id, view.right.canonical_id) if i],
            candidate_id=candidate_id,
        )
        steps = sorted(view.weights.items(), key=lambda kv: -abs(kv[1]))
        chart = charts.waterfall(
            view.prior_weight,
            steps,
            prior_label=translate("cand.prior", c.lang),
            total_label=translate("cand.total", c.lang),
        )
        last = review.last_action(c.db, c.user.steward.actor)
        reserved_other = (
            view.reserved_by not in (None, c.user.steward.actor)
            and view.reserved_until is not None
            and view.reserved_until > utcnow()
        )
        return c.render(
            "candidate.html",
            view=view,
            chart=Markup(chart),
            params=params,
            can_undo=last is not None,
            reserved_other=reserved_other,
        )


@router.post("/review/{candidate_id}/decide")
def decide(
    page: ViewerForm,
    cfg: ConsoleSettings,
    candidate_id: RowId,
    decision: str = Form(...),
    reason: str = Form(""),
    entity_type: str = Form(""),
    source: str = Form(""),
    band: str = Form(""),
) -> Response:
    with page.open() as c:
        flt, params = queue_filter(entity_type, source, band)
        review.decide(
            c.db, candidate_id, decision, actor=c.user.steward.actor, reason=reason or None
        )
        taken = review.take_next(
            c.db, c.user.steward.actor, flt, reserve_minutes=cfg.steward_reservation_minutes
        )
    return _to_candidate(taken, params)


@router.post("/review/undo")
def undo(
    page: ViewerForm,
    cfg: ConsoleSettings,
    entity_type: str = Form(""),
    source: str = Form(""),
    band: str = Form(""),
) -> Response:
    with page.open() as c:
        _flt, params = queue_filter(entity_type, source, band)
        candidate_id = review.undo_last(
            c.db, c.user.steward.actor, reserve_minutes=cfg.steward_reservation_minutes
        )
        # Keep one reservation per steward: the undone candidate is theirs now.
        review.take_next(
            c.db,
            c.user.steward.actor,
            review.QueueFilter(),
            reserve_minutes=cfg.steward_reservation_minutes,
        )
    return _to_candidate(candidate_id, params)
