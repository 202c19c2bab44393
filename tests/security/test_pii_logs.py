"""Personal data never reaches a log (issue 11).

A whole small pipeline runs in subprocesses with logging at DEBUG and every byte
of their output captured: ``mdm synth``, ``mdm ingest --manifest`` (plus a file of
rows that are rejected), ``mdm match train`` / ``run`` for citizens, ``mdm
resolve``, and ``mdm serve`` answering lookups, xrefs (a national-portal key *is*
a personal ID), searches by name, ID and phone, registrations, validation errors
and rejected records whose bodies carry personal data, and a console login and
search. Then every personal ID, old ID, phone, email and full name the run used
(with and without diacritics) is searched for in all that output and in any log
file. The rejects file is the documented place for raw rejected rows: it must
hold them, and they must not be printed anywhere else.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from mdm.standardize import fold
from tests.servers import free_port
from tests.steward.http import csrf_of

PASSWORD = "mat-khau-rat-dai-2026"
REGISTERED = {
    "full_name": "Hà Thị Quỳnh Như",
    "personal_id": "001190012377",
    "phone": "0912 876 543",
    "email": "quynhnhu.ha90@example.vn",
    "date_of_birth": "1990-04-17",
}
REJECTED_ROWS = [
    # impossible date: a reject carrying a name, an ID and a phone
    ("BAD0000001", "Đinh Công Tráng", "31/02/1961", "036061000111", "0977 111 222"),
    ("BAD0000002", "Ôn Thị Nhạn", "32/13/1962", "036161000222", "0977 333 444"),
]


def _run(args: list[str], env: dict[str, str], cwd: Path, logs: list[str], stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, input=stdin
    )
    logs.append(f"$ {' '.join(args)}\n{done.stdout}\n{done.stderr}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


_PII_COLUMNS = ("DINH_DANH", "CMND", "PERSONAL_ID", "PHONE", "DIEN_THOAI", "EMAIL")


def _personal_values(synth: Path) -> set[str]:
    """Every personal value of every citizen file the synthesizer wrote."""
    values: set[str] = set()
    for path in sorted((synth / "data").glob("*citizens.csv")):
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                for column, value in row.items():
                    value = (value or "").strip()
                    col = column.upper()
                    is_name = any(k in col for k in ("TEN", "NAME")) and len(value.split()) >= 2
                    if value and (is_name or any(k in col for k in _PII_COLUMNS)):
                        values.add(value)
    return values


def _needles(values: set[str]) -> set[str]:
    out: set[str] = set()
    for value in values:
        out.add(value.lower())
        out.add(fold(value))
        digits = "".join(c for c in value if c.isdigit())
        if len(digits) >= 9 and "@" not in value:
            out.add(digits)
            if digits.startswith("0"):
                out.add("84" + digits[1:])  # the standardized +84 form
    return {n for n in out if len(n) >= 6}


def _serve_and_call(env: dict[str, str], cwd: Path, logs: list[str], key: str, synth: Path) -> None:
    port = free_port()
    # `mdm serve`, with the root logger at DEBUG first (the most an operator can ask)
    code = (
        "import logging, sys; logging.basicConfig(level=logging.DEBUG); "
        "from mdm.cli.main import app; "
        f"sys.argv = ['mdm', 'serve', '--port', '{port}', '--no-migrate']; app()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                import time

                time.sleep(0.1)
        _api_calls(base, key, synth)
        _console_calls(base, synth)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
        logs.append(f"$ mdm serve\n{out}")


def _first_citizens(synth: Path, n: int) -> list[dict[str, str]]:
    with (synth / "data" / "national-portal_citizens.csv").open(encoding="utf-8") as fh:
        return [row for _, row in zip(range(n), csv.DictReader(fh), strict=False)]


def _api_calls(base: str, key: str, synth: Path) -> None:
    headers = {"Authorization": f"Bearer {key}", "X-Purpose": "pii log test"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
        people = _first_citizens(synth, 5)
        for person in people:
            x = c.get(f"/v1/xrefs/national-portal/{person['personal_id']}")
            assert x.status_code == 200, x.text
            cid = x.json()["canonical_id"]
            assert c.get(f"/v1/entities/{cid}").status_code == 200
            assert c.get(f"/v1/entities/{cid}/history").status_code == 200
            for attributes in (
                {"full_name": person["full_name"], "birth_year": int(person["date_of_birth"][:4])},
                {"full_name": fold(person["full_name"]), "date_of_birth": person["date_of_birth"]},
                {"personal_id": person["personal_id"]},
                {"phone": person["phone"]},
            ):
                r = c.post("/v1/citizen/search", json={"attributes": attributes})
                assert r.status_code == 200, r.text
        r = c.post(
            "/v1/entities:batchGet",
            json={"items": [{"source_system": "national-portal", "source_key": p["personal_id"]}
                            for p in people]},
        )  # fmt: skip
        assert r.status_code == 200
        r = c.post(
            "/v1/citizen/records",
            json={"source_system": "pii-test", "source_key": REGISTERED["personal_id"],
                  "attributes": REGISTERED},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        # rejected and invalid requests whose bodies carry personal data
        bad = {**REGISTERED, "date_of_birth": "1990-02-31"}
        r = c.post(
            "/v1/citizen/records",
            json={"source_system": "pii-test", "source_key": "K-bad", "attributes": bad},
        )
        assert r.status_code == 422, r.text
        for body in (
            {"attributes": {"full_name": REGISTERED["full_name"] + "\x00"}, "source_key": "x",
             "source_system": "pii-test"},
            {"attributes": REGISTERED, "source_system": "pii-test"},  # no source_key
            {"attributes": [REGISTERED["personal_id"], REGISTERED["phone"]]},
        ):  # fmt: skip
            r = c.post("/v1/citizen/records", json=body)
            assert r.status_code == 422, r.text
        r = c.post("/v1/citizen/search", json={"attributes": REGISTERED, "limit": "many"})
        assert r.status_code == 422
        r = c.get(f"/v1/xrefs/pii-test/{REGISTERED['email']}")
        assert r.status_code == 404
        r = c.post(
            "/v1/subscriptions", json={"url": f"https://93.184.216.34/{REGISTERED['phone']}"}
        )
        assert r.status_code < 500


def _console_calls(base: str, synth: Path) -> None:
    person = _first_citizens(synth, 1)[0]
    with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as c:
        form = c.get("/steward/login")
        # a failed login whose username is a personal ID
        r = c.post(
            "/steward/login",
            data={"username": person["personal_id"], "password": person["phone"],
                  "csrf_token": csrf_of(form.text)},
        )  # fmt: skip
        assert r.status_code < 500
        form = c.get("/steward/login")
        r = c.post(
            "/steward/login",
            data={"username": "pii.steward", "password": PASSWORD,
                  "csrf_token": csrf_of(form.text)},
        )  # fmt: skip
        assert r.status_code == 303, r.text
        for params in (
            {"name": person["full_name"], "birth_year": person["date_of_birth"][:4]},
            {"identifier": person["personal_id"]},
            {"system": "national-portal", "key": person["personal_id"]},
        ):
            r = c.get("/steward/search", params=params)
            assert r.status_code in (200, 303), r.text[:300]


def test_no_personal_data_in_any_log(fresh_db_url: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "MDM_DATABASE_URL": fresh_db_url,
        "MDM_LOG_LEVEL": "DEBUG",
        "MDM_MATCHING_RULES_DIR": str(tmp_path / "rules"),
        "PYTHONUNBUFFERED": "1",
    }
    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "rules").mkdir()
    for f in (repo / "matching_rules").glob("*.yaml"):
        (tmp_path / "rules" / f.name).write_text(f.read_text("utf-8"), "utf-8")
    logs: list[str] = []
    synth = tmp_path / "synth"
    mdm = ["-m", "mdm"]
    _run([*mdm, "synth", "--provinces", "1", "--citizens", "150", "--seed", "7",
          "--out", str(synth)], env, work, logs)  # fmt: skip
    _run([*mdm, "db", "upgrade"], env, work, logs)
    reports = tmp_path / "reports"
    _run([*mdm, "ingest", "--manifest", str(synth / "manifest.json"),
          "--report-dir", str(reports)], env, work, logs)  # fmt: skip
    bad = tmp_path / "bad.csv"
    with bad.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["MA_CONG_DAN", "HO_TEN", "NGAY_SINH", "SO_DINH_DANH", "SO_DIEN_THOAI"])
        w.writerows(REJECTED_ROWS)
        fh.write('BAD0000003,"Unclosed Quote Lương Văn Can,01/01/1970,036070000333\n')
    mapping = tmp_path / "bad.yaml"
    mapping.write_text(
        "source_system: pii-bad\nentity_type: citizen\nsource_key: MA_CONG_DAN\nfields:\n"
        "  full_name: HO_TEN\n  date_of_birth: {column: NGAY_SINH, date_format: '%d/%m/%Y'}\n"
        "  personal_id: SO_DINH_DANH\n  phone: SO_DIEN_THOAI\n",
        encoding="utf-8",
    )
    _run([*mdm, "ingest", "--source", "pii-bad", "--mapping", str(mapping), str(bad),
          "--report-dir", str(reports)], env, work, logs)  # fmt: skip
    trained = _run([*mdm, "match", "train", "--entity", "citizen"], env, work, logs)
    # the thresholds derived from the rules' precision target are shown to the operator
    assert "thresholds for precision target 0.998" in trained
    assert "auto-link at match probability" in trained
    _run([*mdm, "match", "run", "--entity", "citizen"], env, work, logs)
    _run([*mdm, "resolve"], env, work, logs)
    scopes = "*:read,*:search,*:write,*:pii,subscriptions:manage"
    key_out = _run(
        [*mdm, "clients", "create", "--name", "pii-test", "--scopes", scopes,
         "--source-systems", "pii-test"], env, work, logs
    )  # fmt: skip
    key = key_out.split()[0]
    _run([*mdm, "stewards", "create", "--username", "pii.steward", "--role", "senior",
          "--password-stdin"], env, work, logs, stdin=PASSWORD + "\n")  # fmt: skip
    _serve_and_call(env, work, logs, key, synth)

    # the rejects file holds the raw rejected rows (documented) ...
    rejects = "\n".join(p.read_text("utf-8") for p in reports.glob("*.rejects.jsonl"))
    for row in REJECTED_ROWS:
        assert row[1] in rejects
    # ... and nothing else prints personal data: not the commands' output, not a log
    # file, not the run summaries
    captured: dict[str, str] = {f"output {i}": text for i, text in enumerate(logs)}
    for path in [*work.rglob("*"), *reports.glob("*.summary.json")]:
        if path.is_file() and (path.suffix in (".log", ".json", ".txt", "") or "log" in path.name):
            captured[str(path)] = path.read_text("utf-8", errors="replace")
    values = _personal_values(synth) | set(REGISTERED.values()) - {REGISTERED["date_of_birth"]}
    values |= {v for row in REJECTED_ROWS for v in row[1:] if not v[0].isdigit() or len(v) > 10}
    values |= {"Lương Văn Can", "036070000333"}
    needles = _needles(values)
    assert len(needles) > 300, len(needles)
    found: dict[str, list[str]] = {}
    for where, text in captured.items():
        haystack = text.lower()
        folded = fold(text)
        hits = sorted(n for n in needles if n in haystack or n in folded)
        if hits:
            found[where] = hits[:10]
    assert found == {}, _explain(found, captured)


def _explain(found: dict[str, list[str]], captured: dict[str, Any]) -> str:
    lines = []
    for where, hits in found.items():
        text = captured[where]
        for hit in hits[:3]:
            i = text.lower().find(hit)
            if i < 0:
                i = fold(text).find(hit)
            lines.append(f"{where}: {hit!r} in ...{text[max(0, i - 150) : i + 100]!r}...")
    return "\n".join(lines)
