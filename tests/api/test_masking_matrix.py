"""The masking matrix: every read route × scope sets without ``citizen:pii``.

DESIGN.md invariant 7: a client without the pii scope never receives a full
identifier, phone, e-mail or birth date, on any path (bodies, provenance, source keys,
weights, events). Every route is called with every scope set (a refused call's error
body is scanned too), and each whole body is searched, as raw text, for every
sensitive value of the seeded people in every form the registry holds it: the raw
values their sources sent, the standardized ones, the golden ones, and the source
keys of a source that keys citizens by personal ID.

The seeded people are the synthetic registry's citizens with a national-portal record
(keyed by CCCD) and a person registered here in two systems of our own with
conflicting old IDs (provenance then quotes candidates). A control client *with*
``citizen:pii`` and a purpose must find those values in the same bodies: the scan can
fail.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mdm.api import clear_auth_cache
from mdm.config import get_settings
from mdm.events.destinations import DestinationPolicy
from mdm.events.feed import sequence_events
from mdm.events.relay import RelayConfig, WebhookRelay
from mdm.services.clients import create_client
from mdm.store.models import Entity, Link, SourceRecord, SourceRecordVersion, SourceSystem
from tests.api.conftest import Registry

PORTAL = "national-portal"
OWN = ("matrix-portal", "matrix-legacy")

#: scope sets without citizen:pii, each with the write binding it needs
SCOPE_SETS: dict[str, list[str]] = {
    "read": ["citizen:read"],
    "read+search": ["citizen:read", "citizen:search"],
    "read+write": ["citizen:read", "citizen:write"],
    "search": ["citizen:search"],
    "write": ["citizen:write"],
    "events": ["events:read", "citizen:read"],
    "all-but-citizen-pii": [
        "*:read",
        "*:search",
        "*:write",
        "organization:pii",
        "dossier:pii",
        "events:read",
        "subscriptions:manage",
    ],
}
CONTROL = ["*:read", "*:search", "*:write", "citizen:pii", "events:read"]


@dataclass
class Person:
    canonical_id: str
    secrets: set[str]  # every sensitive value, in every form held
    legacy_ref: tuple[str, str]  # (system, key) of a record whose key is no identifier
    portal_ref: tuple[str, str] | None  # (system, key) of a record keyed by personal ID
    name: str
    birth_year: str
    personal_id: str


def _forms(field: str, value: Any) -> set[str]:
    """The strings under which a sensitive value may appear in a body."""
    if value is None:
        return set()
    text = str(value).strip()
    out = {text}
    digits = "".join(ch for ch in text if ch.isdigit())
    if field in ("phone", "personal_id", "old_id_number") and len(digits) >= 8:
        out.add(digits)
        if field == "phone" and digits.startswith("84"):
            out.add("0" + digits[2:])
    if field == "date_of_birth":
        # a year alone is what masking leaves: only full dates are secrets
        return {t for t in out if len(digits) >= 6}
    return {t for t in out if len(t) >= 6}


SENSITIVE = ("personal_id", "old_id_number", "phone", "email", "date_of_birth")


def _seeded(reg: Registry, limit: int = 4) -> list[Person]:
    """Citizens with a national-portal record and a full birth date, phone or e-mail."""
    people: list[Person] = []
    with Session(reg.engine) as s:
        rows = s.execute(
            select(Entity.canonical_id, Entity.id, Entity.attributes)
            .join(Link, (Link.entity_id == Entity.id) & Link.active.is_(True))
            .join(SourceRecord, SourceRecord.id == Link.source_record_id)
            .join(SourceSystem, SourceSystem.id == SourceRecord.source_system_id)
            .where(
                Entity.entity_type == "citizen",
                Entity.status == "active",
                SourceSystem.name == PORTAL,
            )
            .order_by(Entity.id)
        ).all()
        for cid, eid, attributes in rows:
            if cid in reg.merged or len(str(attributes.get("date_of_birth") or "")) < 10:
                continue
            if not (attributes.get("phone") or attributes.get("email")):
                continue
            records = s.execute(
                select(
                    SourceSystem.name,
                    SourceRecord.source_key,
                    SourceRecordVersion.raw,
                    SourceRecordVersion.standardized,
                )
                .join(SourceRecord, SourceRecord.source_system_id == SourceSystem.id)
                .join(Link, (Link.source_record_id == SourceRecord.id) & Link.active.is_(True))
                .join(SourceRecordVersion, SourceRecordVersion.source_record_id == SourceRecord.id)
                .where(Link.entity_id == eid)
            ).all()
            legacy = [(sys, key) for sys, key, _r, _s in records if sys != PORTAL]
            if not legacy:
                continue
            secrets: set[str] = set()
            for field in SENSITIVE:
                secrets |= _forms(field, attributes.get(field))
            portal_ref = None
            for system, key, raw, std in records:
                for field in SENSITIVE:
                    secrets |= _forms(field, (raw or {}).get(field))
                    secrets |= _forms(field, (std or {}).get(field))
                if system == PORTAL:
                    secrets |= _forms("personal_id", key)
                    portal_ref = (system, key)
            people.append(
                Person(
                    str(cid),
                    secrets,
                    legacy[0],
                    portal_ref,
                    str(attributes["full_name"]),
                    str(attributes["date_of_birth"])[:4],
                    str(attributes.get("personal_id") or ""),
                )
            )
            if len(people) == limit:
                break
    assert len(people) == limit, "the synthetic registry has too few portal citizens"
    return people


def _register_own(reg: Registry, key: str) -> Person:
    """One person registered in two systems of our own, the portal-like one keyed by
    the personal ID; old IDs conflict, so provenance lists candidates."""
    pid = "001" + "1" + "91" + uuid.uuid4().int.__str__()[:6]  # female, born 1991, Hà Nội
    attrs = {
        "full_name": "Nguyễn Thị Matrix Lan",
        "date_of_birth": "14/03/1991",
        "sex": "Nữ",
        "personal_id": pid,
        "phone": "0912 345 " + pid[-3:],
        "email": f"lan.{pid[-6:]}@example.vn",
        "permanent_address": "12 Hàng Bông, Phường Hoàn Kiếm, Thành phố Hà Nội",
    }
    with httpx.Client(base_url=reg.base_url, headers={"Authorization": f"Bearer {key}"}) as c:
        first = c.post(
            "/v1/citizen/records",
            json={
                "source_system": OWN[0],
                "source_key": pid,
                "attributes": {**attrs, "old_id_number": "012345" + pid[-3:]},
            },
        )
        assert first.status_code == 200, first.text
        second = c.post(
            "/v1/citizen/records",
            json={
                "source_system": OWN[1],
                "source_key": f"L-{pid[-6:]}",
                "attributes": {**attrs, "old_id_number": "013579" + pid[-3:]},
            },
        )
        assert second.status_code == 200, second.text
    cid = first.json()["canonical_id"]
    secrets: set[str] = {"14/03/1991", "1991-03-14", attrs["email"]}
    secrets |= _forms("personal_id", pid) | _forms("phone", attrs["phone"])
    secrets |= {"012345" + pid[-3:], "013579" + pid[-3:]}
    return Person(cid, secrets, (OWN[1], f"L-{pid[-6:]}"), (OWN[0], pid), attrs["full_name"],
                  "1991", pid)  # fmt: skip


class _Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def matrix(registry: Registry) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:6]
    with Session(registry.engine) as s:
        keys = {
            name: create_client(
                s,
                f"matrix-{name}-{tag}",
                scopes,
                source_systems=OWN if any(sc.endswith(":write") for sc in scopes) else (),
            ).key
            for name, scopes in {**SCOPE_SETS, "control": CONTROL}.items()
        }
        s.commit()
    clear_auth_cache()
    own = _register_own(registry, keys["control"])
    people = [*_seeded(registry), own]
    yield {"keys": keys, "people": people, "own": own}


def _headers(key: str, scopes: list[str]) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if any(s.endswith(":pii") for s in scopes):
        headers["X-Purpose"] = "masking matrix"  # keys holding any pii scope state one
    return headers


def _bodies(reg: Registry, key: str, scopes: list[str], people: list[Person]) -> list[str]:
    """Every read route's answer for this key, as text (errors included)."""
    out: list[str] = []
    now = datetime.now(UTC).isoformat()
    with httpx.Client(base_url=reg.base_url, headers=_headers(key, scopes), timeout=30) as c:
        for p in people:
            out.append(c.get(f"/v1/entities/{p.canonical_id}").text)
            out.append(c.get(f"/v1/entities/{p.canonical_id}", params={"as_of": now}).text)
            out.append(c.get(f"/v1/entities/{p.canonical_id}/history").text)
            for system, skey in filter(None, (p.legacy_ref, p.portal_ref)):
                out.append(c.get(f"/v1/xrefs/{system}/{skey}").text)
            items: list[dict[str, Any]] = [{"id": p.canonical_id}]
            items += [
                {"source_system": s_, "source_key": k_}
                for s_, k_ in filter(None, (p.legacy_ref, p.portal_ref))
            ]
            out.append(c.post("/v1/entities:batchGet", json={"items": items}).text)
            out.append(
                c.post(
                    "/v1/citizen/search",
                    json={"attributes": {"full_name": p.name, "birth_year": p.birth_year}},
                ).text
            )
            if p.personal_id:  # the query carries the value; the answer must not
                out.append(
                    c.post(
                        "/v1/citizen/search", json={"attributes": {"personal_id": p.personal_id}}
                    ).text
                )
            # a registration of the same person into a system this key may write
            out.append(
                c.post(
                    "/v1/citizen/records",
                    json={
                        "source_system": OWN[1],
                        "source_key": f"M-{uuid.uuid4().hex[:10]}",
                        "attributes": {
                            "full_name": p.name,
                            "date_of_birth": p.birth_year,
                            "personal_id": p.personal_id or None,
                        },
                    },
                ).text
            )
        out.append(c.get("/v1/events", params={"limit": 1000}).text)
        out.append(_sse(c))
    return out


def _sse(c: httpx.Client, *, max_events: int = 300, seconds: float = 5.0) -> str:
    """The first events of the SSE stream (or its error body)."""
    chunks: list[str] = []
    deadline = time.monotonic() + seconds
    with c.stream("GET", "/v1/events/stream") as r:
        if r.status_code != 200:
            return r.read().decode()
        events = 0
        for line in r.iter_lines():
            chunks.append(line)
            events += line.startswith("data:")
            if events >= max_events or time.monotonic() > deadline or line.startswith(": keep"):
                break
    return "\n".join(chunks)


def _sequence(reg: Registry) -> None:
    with reg.engine.begin() as conn:
        while sequence_events(conn) > 0:
            pass


def _leaks(bodies: list[str], people: list[Person]) -> list[tuple[str, str]]:
    found = []
    for p in people:
        for secret in p.secrets:
            for body in bodies:
                if secret in body:
                    found.append((p.canonical_id, secret))
                    break
    return found


@pytest.mark.parametrize("scope_set", sorted(SCOPE_SETS))
def test_no_route_gives_a_sensitive_value_to_a_key_without_pii(
    registry: Registry, matrix: dict[str, Any], scope_set: str
) -> None:
    _sequence(registry)
    people: list[Person] = matrix["people"]
    bodies = _bodies(registry, matrix["keys"][scope_set], SCOPE_SETS[scope_set], people)
    assert len(bodies) >= 8 * len(people) + 2  # every route ran
    assert _leaks(bodies, people) == []


def test_the_scan_finds_the_values_a_pii_key_reads(
    registry: Registry, matrix: dict[str, Any]
) -> None:
    """The control: with citizen:pii and a purpose the same routes do carry them."""
    _sequence(registry)
    people: list[Person] = matrix["people"]
    bodies = _bodies(registry, matrix["keys"]["control"], CONTROL, people)
    leaked = {cid for cid, _secret in _leaks(bodies, people)}
    assert leaked == {p.canonical_id for p in people}
    own: Person = matrix["own"]
    text = "\n".join(bodies)
    assert own.personal_id in text and f"{OWN[0]}/{own.personal_id}" in text


def test_webhook_payloads_carry_no_sensitive_value(
    registry: Registry, matrix: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every event delivered to a subscriber without citizen:pii (loopback receiver)."""
    _Receiver.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    key = matrix["keys"]["all-but-citizen-pii"]
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    people: list[Person] = matrix["people"]
    try:
        _sequence(registry)
        with httpx.Client(
            base_url=registry.base_url,
            headers=_headers(key, SCOPE_SETS["all-but-citizen-pii"]),
            timeout=30,
        ) as c:
            created = _subscribe(c, url, monkeypatch)
            assert created.status_code == 201, created.text
            # changes after the subscription: every seeded person's record again
            for p in people:
                r = c.post(
                    "/v1/citizen/records",
                    json={
                        "source_system": OWN[1],
                        "source_key": f"W-{uuid.uuid4().hex[:10]}",
                        "attributes": {"full_name": p.name, "personal_id": p.personal_id or None},
                    },
                )
                assert r.status_code == 200, r.text
        # the receiver is on loopback: the operator's allow-list lets the relay reach it
        relay = WebhookRelay(
            registry.engine,
            RelayConfig.from_settings(),
            policy=DestinationPolicy(allow_private=True),
        )
        stop = threading.Event()
        worker = threading.Thread(target=relay.run, args=(stop,), daemon=True)
        worker.start()
        deadline = time.monotonic() + 60
        while len(_Receiver.bodies) < len(people) and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        worker.join(timeout=30)
        relay.close()
    finally:
        server.shutdown()
        server.server_close()
    bodies = [b.decode() for b in _Receiver.bodies]
    assert bodies, "no event was delivered"
    assert all(json.loads(b)["entity_type"] == "citizen" for b in bodies)
    assert _leaks(bodies, people) == []


def _subscribe(c: httpx.Client, url: str, monkeypatch: pytest.MonkeyPatch) -> httpx.Response:
    """Subscribe a loopback URL, as an operator's MDM_WEBHOOK_ALLOW_PRIVATE permits."""
    monkeypatch.setattr(get_settings(), "webhook_allow_private", True)
    return c.post("/v1/subscriptions", json={"url": url, "filters": {"entity_types": ["citizen"]}})
