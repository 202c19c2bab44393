"""Charts as inline SVG, drawn on the server: no JavaScript, no chart library, and
readable in a screenshot or a printed page."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

_POS = "#2e7d32"
_NEG = "#c62828"
_BAR = "#1565c0"
_FONT = "font-family='system-ui,sans-serif' font-size='12'"


def waterfall(
    prior: float,
    steps: Sequence[tuple[str, float]],
    *,
    prior_label: str = "prior",
    total_label: str = "total",
    width: int = 560,
) -> str:
    """A horizontal waterfall of match weights: the prior, then each comparison's
    weight moving the running total right (evidence for) or left (against), then
    the total. Values are log2 Bayes factors, so bars add."""
    rows: list[tuple[str, float, float, str]] = [(prior_label, 0.0, prior, "#757575")]
    running = prior
    for label, w in steps:
        rows.append((label, running, running + w, _POS if w >= 0 else _NEG))
        running += w
    rows.append((total_label, 0.0, running, "#424242"))
    lo = min(0.0, *(min(a, b) for _l, a, b, _c in rows))
    hi = max(0.0, *(max(a, b) for _l, a, b, _c in rows))
    span = (hi - lo) or 1.0
    label_w, pad, row_h = 150, 60, 22
    plot_w = width - label_w - pad

    def x(v: float) -> float:
        return label_w + (v - lo) / span * plot_w

    height = row_h * len(rows) + 10
    out = [
        f"<svg class='chart waterfall' role='img' viewBox='0 0 {width} {height}' "
        f"width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>",
        f"<line x1='{x(0):.1f}' y1='0' x2='{x(0):.1f}' y2='{height}' stroke='#9e9e9e' "
        "stroke-dasharray='3,3'/>",
    ]
    for i, (label, a, b, color) in enumerate(rows):
        y = 5 + i * row_h
        left, right = sorted((x(a), x(b)))
        delta = b - a
        value = b if i in (0, len(rows) - 1) else delta
        out.append(
            f"<text x='{label_w - 6}' y='{y + 14}' text-anchor='end' {_FONT}>"
            f"{escape(label)}</text>"
            f"<rect x='{left:.1f}' y='{y + 3}' width='{max(right - left, 1.5):.1f}' "
            f"height='{row_h - 6}' fill='{color}'><title>{escape(label)}: {value:+.2f}"
            "</title></rect>"
            f"<text x='{right + 4:.1f}' y='{y + 14}' {_FONT}>{value:+.2f}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def bars(items: Sequence[tuple[str, float]], *, width: int = 420, color: str = _BAR) -> str:
    """Horizontal bars, one per (label, value), scaled to the largest value."""
    if not items:
        return ""
    top = max(v for _l, v in items) or 1.0
    label_w, pad, row_h = 170, 60, 20
    plot_w = width - label_w - pad
    height = row_h * len(items) + 6
    out = [
        f"<svg class='chart bars' role='img' viewBox='0 0 {width} {height}' width='{width}' "
        f"height='{height}' xmlns='http://www.w3.org/2000/svg'>"
    ]
    for i, (label, value) in enumerate(items):
        y = 3 + i * row_h
        w = value / top * plot_w
        shown = f"{value:,.0f}" if float(value).is_integer() else f"{value:.1%}"
        out.append(
            f"<text x='{label_w - 6}' y='{y + 13}' text-anchor='end' {_FONT}>"
            f"{escape(label[:26])}</text>"
            f"<rect x='{label_w}' y='{y + 2}' width='{max(w, 0.5):.1f}' height='{row_h - 5}' "
            f"fill='{color}'><title>{escape(label)}: {shown}</title></rect>"
            f"<text x='{label_w + w + 4:.1f}' y='{y + 13}' {_FONT}>{shown}</text>"
        )
    out.append("</svg>")
    return "".join(out)
