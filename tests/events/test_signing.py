"""Signatures: the reference verifier, and the snippets docs/events.md gives agencies
(Python and Node.js), run against signatures the relay makes."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from mdm.events.signing import signature, verify

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"
SECRET = "whsec_test-secret"
BODY = (
    b'{"canonical_id":"P-7FKW941ZEDSYY","data":{"changed":["full_name"]},"type":"entity.updated"}'
)


def _snippet(lang: str) -> str:
    blocks = re.findall(rf"```{lang}\n(.*?)```", DOCS.read_text(), re.S)
    assert len(blocks) == 1, f"docs/events.md should hold one {lang} block"
    return str(blocks[0])


def test_known_answer() -> None:
    # HMAC-SHA256("key", "1700000000.{}"), computed independently
    import hashlib
    import hmac

    want = hmac.new(b"key", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert signature("key", 1700000000, b"{}") == f"v1={want}"


def test_verify_rejects_tampering_wrong_secret_and_replays() -> None:
    now = time.time()
    ts = str(int(now))
    sig = signature(SECRET, ts, BODY)
    assert verify(SECRET, ts, BODY, sig, now=now)
    assert verify(SECRET, ts, BODY, f"v1=00, {sig}", now=now)  # rotation: one of several
    assert not verify(SECRET, ts, BODY + b" ", sig, now=now)
    assert not verify("other", ts, BODY, sig, now=now)
    assert not verify(SECRET, str(int(now) + 1), BODY, sig, now=now)
    assert not verify(SECRET, ts, BODY, sig, now=now + 301)  # older than 5 minutes
    assert verify(SECRET, ts, BODY, sig, now=now + 299)
    assert not verify(SECRET, "soon", BODY, sig, now=now)


def test_documented_python_snippet_verifies_relay_signatures() -> None:
    scope: dict[str, object] = {}
    exec(_snippet("python"), scope)
    check = scope["verify_mdm_signature"]
    ts = str(int(time.time()))
    sig = signature(SECRET, ts, BODY)
    assert check(SECRET, ts, BODY, sig) is True  # type: ignore[operator]
    assert check(SECRET, ts, BODY[:-1], sig) is False  # type: ignore[operator]
    assert check(SECRET, str(int(ts) - 400), BODY, signature(SECRET, int(ts) - 400, BODY)) is False  # type: ignore[operator]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_documented_node_snippet_verifies_relay_signatures(tmp_path: Path) -> None:
    ts = int(time.time())
    cases = [
        (ts, BODY, signature(SECRET, ts, BODY), True),
        (ts, BODY + b"x", signature(SECRET, ts, BODY), False),
        (ts - 600, BODY, signature(SECRET, ts - 600, BODY), False),
        (ts, BODY, "v1=deadbeef, " + signature(SECRET, ts, BODY), True),
    ]
    script = (
        _snippet("js")
        + "\nconst cases = "
        + repr([[str(t), b.hex(), s, ok] for t, b, s, ok in cases])
        .replace("True", "true")
        .replace("False", "false")
        + ";\n"
        + (
            "for (const [t, hex, s, ok] of cases) {\n"
            f"  const got = verifyMdmSignature({SECRET!r}, t, Buffer.from(hex, 'hex'), s);\n"
            "  if (got !== ok) { console.error('mismatch', t, s, got); process.exit(1); }\n"
            "}\nconsole.log('ok');\n"
        )
    )
    path = tmp_path / "verify.js"
    path.write_text(script)
    out = subprocess.run(["node", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
