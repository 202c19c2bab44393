"""Shared parts of the reliability tests: a trained citizen model, synthetic people
that the matcher links across sources, API clients, and a Postgres cluster of the
test's own that it may stop and start (never the shared server at 5432).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from mdm.services import matching as matching_svc
from mdm.services.clients import create_client
from mdm.store.db import make_engine
from tests.conftest import IN_CI
from tests.matching.synthetic import trained_citizen_rules

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from _pgcluster import PgCluster, pg_bindir, run_as_user

# ------------------------------------------------------------------ model


@pytest.fixture(scope="session")
def citizen_rules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The shipped citizen rules and a model trained on synthetic citizens (as in
    tests/services/test_registration.py: :func:`trained_citizen_rules`)."""
    tmp = tmp_path_factory.mktemp("reliability-rules")
    yield trained_citizen_rules(tmp)
    matching_svc.clear_cache()


# ------------------------------------------------------------------ people

_SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô"]
_MALE = (
    ["Văn", "Đức", "Minh", "Quang", "Hữu", "Công", "Xuân"],
    ["An", "Bảo", "Cường", "Dũng", "Hải", "Hùng", "Khánh", "Long", "Nam", "Phúc", "Sơn", "Tú"],
)
_FEMALE = (
    ["Thị", "Ngọc", "Thu", "Thanh", "Minh", "Kim", "Bích"],
    ["Anh", "Chi", "Dung", "Hà", "Hạnh", "Lan", "Linh", "Mai", "Nga", "Phương", "Thảo", "Yến"],
)


def person(i: int, seed: int = 1) -> dict[str, str]:
    """Raw attributes of synthetic person ``i``: a unique, well-formed personal ID (its
    province, century and sex digits agree with the birth date and sex), a unique
    phone, a name and a birth date. Two sources sending the same person send the same
    attributes, which the model links automatically."""
    rng = random.Random(seed * 1_000_003 + i)
    male = rng.random() < 0.5
    middles, givens = _MALE if male else _FEMALE
    year = rng.randint(1945, 2009)
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    century = 0 if year < 2000 else 2
    sex_digit = century + (0 if male else 1)
    return {
        "full_name": f"{rng.choice(_SURNAMES)} {rng.choice(middles)} {rng.choice(givens)}",
        "date_of_birth": f"{year:04d}-{month:02d}-{day:02d}",
        "sex": "nam" if male else "nữ",
        "personal_id": (
            f"{1 + i % 96:03d}{sex_digit}{year % 100:02d}{(seed * 7919 + i) % 10**6:06d}"
        ),
        "phone": f"09{(seed * 104729 + i * 37) % 10**8:08d}",
    }


def make_api_clients(
    url: str,
    names: list[str],
    scopes: list[str],
    *,
    rate_limit_per_minute: int = 10**6,
    source_systems: tuple[str, ...] = (),
) -> dict[str, str]:
    """API clients (``mdm clients create``'s service) in the database at ``url``,
    writing ``source_systems``; name -> key."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            keys = {
                n: create_client(
                    session,
                    n,
                    scopes,
                    rate_limit_per_minute=rate_limit_per_minute,
                    source_systems=source_systems,
                ).key
                for n in names
            }
            session.commit()
    finally:
        engine.dispose()
    return keys


# ------------------------------------------------------------------ own Postgres


def _unavailable(reason: str) -> None:
    message = f"!!! SKIPPED: cannot run a Postgres cluster of the test's own: {reason}"
    if IN_CI:
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


@pytest.fixture
def own_postgres(request: pytest.FixtureRequest) -> Iterator[PgCluster]:
    """A running Postgres cluster of this test's own (see :class:`PgCluster`)."""
    backends = str(request.config.getoption("--backends"))
    if "postgres" not in backends and not IN_CI:
        pytest.skip(f"!!! SKIPPED: postgres is not among --backends ({backends})")
    bindir = pg_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        _unavailable("no initdb/pg_ctl found (PATH, pg_config, /usr/lib/postgresql/*/bin)")
    assert bindir is not None
    try:
        run_as = run_as_user()
    except RuntimeError as exc:
        _unavailable(str(exc))
        raise
    cluster = PgCluster(bindir, run_as)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def json_or_text(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
