"""Query, path and form parameters of the console and their allowed values. A value
outside them is a 400 page naming the parameter (never its value), not a 500."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path as PathParam

from mdm.domain.standards import ENTITY_TYPES
from mdm.exceptions import BadRequest
from mdm.services import review

BANDS = {
    "": (None, None),
    "0.99-1": (0.99, None),
    "0.95-0.99": (0.95, 0.99),
    "0.9-0.95": (0.9, 0.95),
    "0-0.9": (None, 0.9),
}
#: The largest row ID either database stores (a signed 64-bit integer): larger
#: numbers in a URL or a form are refused before they reach a driver.
MAX_ID = 2**63 - 1
RowId = Annotated[int, PathParam(ge=1, le=MAX_ID)]


class BadParameter(BadRequest):
    """A query or form parameter outside its allowed values: a 400 page naming the
    parameter (never its value) and, for enumerations, what is allowed."""

    def __init__(self, name: str, allowed: tuple[str, ...] = ()) -> None:
        self.name = name
        self.allowed = allowed
        detail = f"invalid value of {name!r}"
        if allowed:
            detail += f"; allowed: {', '.join(allowed)}"
        super().__init__(detail, code="bad_parameter")


def one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise BadParameter(name, tuple(a for a in allowed if a))
    return value


def row_id(name: str, text: str) -> int:
    """A row ID from a form: ASCII digits, 1 to :data:`MAX_ID`, else a 400 page."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_ID:
        raise BadParameter(name)
    return int(text)


def queue_filter(
    entity_type: str = "", source: str = "", band: str = ""
) -> tuple[review.QueueFilter, dict[str, str]]:
    """The review queue's filter and the parameters that carry it to the next page.

    An entity type or score band outside the lists is a 400 page; a source system is
    any name (an unknown one filters everything out)."""
    one_of("entity_type", entity_type, ("", *ENTITY_TYPES))
    lo, hi = BANDS[one_of("band", band, tuple(BANDS))]
    params = {"entity_type": entity_type, "source": source, "band": band}
    return (
        review.QueueFilter(entity_type or None, source or None, lo, hi),
        {k: v for k, v in params.items() if v},
    )
