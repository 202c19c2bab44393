"""The console in real headless Chromium (Debian's ``chromium``, driven by
Playwright): log in, review three candidates with the keyboard, undo one, merge two
entities after the preview, split one back; every effect is checked in the database
and in the outbox. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mdm.store.db import make_engine
from mdm.store.models import (
    Entity,
    MatchCandidate,
    OutboxEvent,
    Redirect,
    ReviewAction,
    StewardDecision,
)
from tests.conftest import IN_CI
from tests.steward.seed import PASSWORD, Seeded

CHROMIUM = os.environ.get("MDM_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (bash scripts/install-system-deps)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


def _status(s: Session, cid: int) -> str:
    return str(
        s.execute(select(MatchCandidate.status).where(MatchCandidate.id == cid)).scalar_one()
    )


def _events(s: Session, canonical_id: str) -> list[str]:
    return list(
        s.execute(
            select(OutboxEvent.event_type)
            .where(OutboxEvent.canonical_id == canonical_id)
            .order_by(OutboxEvent.position)
        ).scalars()
    )


def test_review_merge_and_split_in_a_browser(
    browser: object, served: tuple[str, str, Seeded], backend: str
) -> None:
    base, url, data = served
    ARTIFACTS.mkdir(exist_ok=True)
    engine = make_engine(url)
    page = browser.new_page(viewport={"width": 1366, "height": 768})  # type: ignore[attr-defined]

    def db() -> Session:
        return Session(engine)

    def key(k: str) -> None:
        with page.expect_navigation():
            page.keyboard.press(k)

    # log in (the login page is in Vietnamese)
    page.goto(f"{base}/steward/")
    assert "/steward/login" in page.url
    page.fill("#username", "lan")
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("#login-submit")
    assert page.url.endswith("/steward/review")
    assert page.inner_text("#pending-count") == "4"
    page.screenshot(path=ARTIFACTS / f"queue-{backend}.png", full_page=True)

    with db() as s:
        ids = {k: data.cid(s, k) for k in ("a1", "b1", "a2", "a3", "b3", "m1")}

    # review three candidates with the keyboard: skip c1, not-same c2 (splits an
    # entity), same c3 (merges two)
    with page.expect_navigation():
        page.click("#start-review")
    assert page.inner_text("#candidate-id") == str(data.candidates["c1"])
    assert page.locator("tr.differs[data-field='full_name']").count() == 1
    assert page.locator("svg.waterfall").count() == 1
    page.screenshot(path=ARTIFACTS / f"candidate-{backend}.png", full_page=True)
    key("k")
    assert page.inner_text("#candidate-id") == str(data.candidates["c2"])
    key("n")
    assert page.inner_text("#candidate-id") == str(data.candidates["c3"])
    key("s")
    assert page.inner_text("#candidate-id") == str(data.candidates["c4"])

    with db() as s:
        assert _status(s, data.candidates["c1"]) == "skipped"
        assert _status(s, data.candidates["c2"]) == "rejected"
        assert _status(s, data.candidates["c3"]) == "accepted"
        assert data.cid(s, "a2") != data.cid(s, "b2")  # split at once
        assert data.cid(s, "a3") == data.cid(s, "b3")  # merged at once
        assert "entity.unmerged" in _events(s, ids["a2"])
        merged_away = ids["b3"] if data.cid(s, "a3") == ids["a3"] else ids["a3"]
        assert _events(s, merged_away)[-1] == "entity.merged"
        kinds = set(
            s.execute(
                select(StewardDecision.kind).where(
                    StewardDecision.candidate_id.in_(
                        [data.candidates["c2"], data.candidates["c3"]]
                    ),
                    StewardDecision.active.is_(True),
                )
            ).scalars()
        )
        assert kinds == {"must_link", "cannot_link"}

    # undo the last decision (the merge of c3): back on c3, the entities apart again
    key("u")
    assert page.inner_text("#candidate-id") == str(data.candidates["c3"])
    with db() as s:
        assert _status(s, data.candidates["c3"]) == "pending"
        assert data.cid(s, "a3") == ids["a3"] and data.cid(s, "b3") == ids["b3"]
        assert _events(s, merged_away)[-1] == "entity.unmerged"
        assert s.execute(select(Redirect)).first() is None
        assert (
            s.execute(
                select(ReviewAction.undone_at).where(
                    ReviewAction.candidate_id == data.candidates["c3"]
                )
            ).scalar_one()
            is not None
        )

    # merge two entities from the entity page, after the preview
    page.goto(f"{base}/steward/entity/{ids['a1']}")
    page.fill("#merge-other", ids["b1"])
    with page.expect_navigation():
        page.click("#merge-preview")
    assert page.locator("#merge-table").count() == 1
    with db() as s:
        assert s.execute(select(Redirect)).first() is None  # a preview writes nothing
    page.fill("#merge-reason", "cùng CCCD")
    with page.expect_navigation():
        page.click("#merge-confirm")
    assert page.inner_text("#canonical-id") == ids["a1"]
    assert ids["b1"] in page.inner_text("#redirects")
    with db() as s:
        loser = s.execute(select(Entity).where(Entity.canonical_id == ids["b1"])).scalar_one()
        assert loser.status == "merged"
        assert data.cid(s, "b1") == ids["a1"]
        assert _events(s, ids["b1"])[-1] == "entity.merged"
        assert _events(s, ids["a1"])[-1] == "entity.merged"
    page.screenshot(path=ARTIFACTS / f"entity-{backend}.png", full_page=True)

    # split b1's record back out: its former entity (and ID) is restored
    page.check(f"#split-{data.records['b1']}")
    page.fill("#split-reason", "nhầm")
    with page.expect_navigation():
        page.click("#split-submit")
    assert page.inner_text("#canonical-id") == ids["b1"]
    with db() as s:
        assert data.cid(s, "b1") == ids["b1"] and data.cid(s, "a1") == ids["a1"]
        restored = s.execute(select(Entity).where(Entity.canonical_id == ids["b1"])).scalar_one()
        assert restored.status == "active"
        assert _events(s, ids["b1"])[-1] == "entity.unmerged"
        assert _events(s, ids["a1"])[-1] == "entity.unmerged"
        assert s.execute(select(Redirect)).first() is None

    # the quality page, in English this time
    page.goto(f"{base}/steward/quality?lang=en")
    assert "Quality by source system" in page.inner_text("h1")
    assert page.locator("svg.bars").count() >= 5
    page.screenshot(path=ARTIFACTS / f"quality-{backend}.png", full_page=True)
    page.close()
    engine.dispose()
