"""Search: a canonical ID or a (source system, key) goes straight to the golden
record; attributes list the probabilistic search's hits. Every search is audited."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mdm.domain.canonical_id import parse_canonical_id
from mdm.domain.standards import ENTITY_TYPES
from mdm.exceptions import MDMError
from mdm.services import console_search
from mdm.steward.deps import ViewerPage
from mdm.steward.params import one_of
from mdm.steward.rendering import PREFIX

router = APIRouter()


def search_attributes(
    entity_type: str, name: str, birth_year: str, identifier: str
) -> dict[str, str]:
    name, identifier = name.strip(), identifier.strip()
    if entity_type == "citizen":
        out = {"full_name": name, "birth_year": birth_year.strip()}
        if identifier:
            out["personal_id" if len(identifier) == 12 else "old_id_number"] = identifier
        return out
    if entity_type == "organization":
        return {"name": name, "tax_code": identifier}
    return {"dossier_code": identifier or name}


@router.get("/search", response_class=HTMLResponse)
def search(
    page: ViewerPage,
    q: str = "",
    system: str = "",
    key: str = "",
    entity_type: str = "citizen",
    name: str = "",
    birth_year: str = "",
    identifier: str = "",
) -> Response:
    with page.open() as c:
        one_of("entity_type", entity_type, ENTITY_TYPES)
        result: console_search.SearchResult | None = None
        found: str | None = None
        asked = False
        if q.strip():
            asked = True
            try:
                parse_canonical_id(q.strip())
                found = q.strip()
            except MDMError:
                found = None
        elif system.strip() and key.strip():
            asked = True
            found = console_search.by_source_key(c.db, system, key)
        elif name.strip() or identifier.strip():
            asked = True
            attrs = search_attributes(entity_type, name, birth_year, identifier)
            result = console_search.by_attributes(c.db, entity_type, attrs)
        if asked:
            by = "canonical_id" if q.strip() else "source_key" if system.strip() else "attributes"
            c.audit("console.search", [found] if found else None, by=by, entity_type=entity_type)
        if found:
            return RedirectResponse(f"{PREFIX}/entity/{found}", status_code=303)
        form = {
            "q": q,
            "system": system,
            "key": key,
            "entity_type": entity_type,
            "name": name,
            "birth_year": birth_year,
            "identifier": identifier,
        }
        return c.render("search.html", asked=asked, result=result, form=form)
