"""Data quality by source system, as bar charts."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from mdm.services import quality
from mdm.steward import charts
from mdm.steward.deps import ViewerPage

router = APIRouter()


def _chart(values: list[tuple[str, float]], color: str = "#1565c0") -> Markup:
    return Markup(charts.bars(values, color=color))


def _figures(report: quality.QualityReport) -> dict[str, Markup]:
    srcs = report.sources
    reasons: dict[str, int] = {}
    for s in srcs:
        for code, n in s.rejects_by_reason.items():
            reasons[code] = reasons.get(code, 0) + n
    return {
        "records": _chart([(s.source_system, s.total_records) for s in srcs]),
        "reject_rate": _chart([(s.source_system, s.reject_rate) for s in srcs], "#c62828"),
        "dup_within": _chart([(s.source_system, s.duplicates_within) for s in srcs], "#6a1b9a"),
        "dup_across": _chart([(s.source_system, s.duplicates_across) for s in srcs], "#00838f"),
        "conflicts": _chart([(s.source_system, s.conflicted_entities) for s in srcs], "#ef6c00"),
        "ambiguous": _chart([(s.source_system, s.ambiguous_addresses) for s in srcs], "#5d4037"),
        "pending": _chart([(s.source_system, s.pending_review) for s in srcs], "#455a64"),
        "by_reason": _chart(sorted(reasons.items(), key=lambda kv: -kv[1]), "#c62828"),
        "conflicts_by_attr": _chart(
            sorted(report.conflicts_by_attribute.items(), key=lambda kv: -kv[1]), "#ef6c00"
        ),
    }


@router.get("/quality", response_class=HTMLResponse)
def quality_page(page: ViewerPage) -> Response:
    with page.open() as c:
        report = quality.source_quality(c.db)
        return c.render("quality.html", report=report, figures=_figures(report))
