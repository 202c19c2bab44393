"""Where webhooks may point (docs/events.md, "Where webhooks may point").

Subscriptions are made through the real API, which checks the URL's host after
resolving it; the relay checks again on every connection and connects only to the
address it checked. Names are answered by :class:`FakeDNS` (DNS is not ours to test,
and no test may look a name up for real). Every connection these tests make is
guarded: one to anything but loopback fails the test (:func:`loopback_only`);
public addresses here are only ever validated, never contacted.
"""

from __future__ import annotations

import http.server
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from mdm.config import Settings
from mdm.events.destinations import DestinationPolicy, DestinationRefused, parse_networks
from mdm.events.pinned_http import pinned_client
from mdm.events.relay import WebhookRelay
from mdm.services import subscriptions as subs
from mdm.store.db import unit_of_work
from tests.events.conftest import (
    FAST,
    Receiver,
    add_client,
    factory,
    free_port,
    make_entities,
)

PUBLIC = "93.184.216.34"  # validated only, never contacted


class FakeDNS:
    """Names and the addresses they resolve to; any other name does not resolve.
    Change ``answers`` to make a name resolve elsewhere later (rebinding)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {
            "hook.example.test": [PUBLIC],
            "v6.example.test": ["2606:4700:4700::1111"],
            "localhost": ["127.0.0.1", "::1"],
            "dual.example.test": [PUBLIC, "127.0.0.1"],  # one bad address is enough
            "internal.example.test": ["10.1.2.3"],
            "shared.example.test": ["100.64.0.7"],
            "v6loop.example.test": ["::1"],
            "ula.example.test": ["fd12:3456::1"],
            "linklocal.example.test": ["fe80::1"],
            "mapped.example.test": ["::ffff:127.0.0.1"],
            "nat64.example.test": ["64:ff9b::a9fe:a9fe"],  # 169.254.169.254
            "sixtofour.example.test": ["2002:c0a8:101::1"],  # 192.168.1.1
            "multicast.example.test": ["ff0e::1"],
            # a metadata service's name is refused without being looked up
            "metadata.google.internal": [PUBLIC],
            "rebind.example.test": [PUBLIC],
        }
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def resolve(self, host: str, port: int) -> list[str]:
        with self.lock:
            self.asked.append(host)
            if host not in self.answers:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return list(self.answers[host])


@pytest.fixture
def dns() -> FakeDNS:
    return FakeDNS()


@pytest.fixture
def webhook_policy(dns: FakeDNS) -> DestinationPolicy:
    """The API's policy here: the default one (public addresses only), fake DNS."""
    return DestinationPolicy(resolver=dns.resolve)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every TCP connection httpx/httpcore opens: only to a loopback address (a name
    here would mean the HTTP client resolved it itself)."""
    original = httpcore.SyncBackend.connect_tcp
    beyond: list[str] = []

    def guarded(
        self: httpcore.SyncBackend, host: str, port: int, *args: Any, **kwargs: Any
    ) -> httpcore.NetworkStream:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            beyond.append(host)
            raise httpcore.ConnectError("test guard: not a loopback address")
        return original(self, host, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", guarded)
    yield beyond
    assert beyond == [], f"a connection beyond loopback was attempted: {beyond}"


def _agency(api: tuple[str, dict[str, str]]) -> httpx.Client:
    base, keys = api
    return httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {keys['agency']}"}, timeout=10
    )


REFUSED = [
    # the probe's findings
    "http://127.0.0.1:5432/",
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://2130706433:8190/",
    "http://0x7f000001/",
    "http://localhost:22/",
    # other spellings of loopback and the unspecified address
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://LOCALHOST./",
    "http://0/",
    "http://0.0.0.0:8000/",
    # private, shared, link-local, multicast, reserved, broadcast, benchmarking
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "https://192.168.1.1/",
    "http://100.64.0.1/",
    "http://169.254.1.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://198.18.0.1/",
    # cloud metadata, by address or by name (even public ones)
    "http://168.63.129.16/",
    "http://100.100.100.200/latest/meta-data/",
    "http://metadata/computeMetadata/v1/",
    "http://instance-data/latest/meta-data/",
    # names resolving (also) to non-public addresses
    "http://dual.example.test/hook",
    "http://internal.example.test/hook",
    "http://shared.example.test/hook",
    "http://v6loop.example.test/hook",
    "http://ula.example.test/hook",
    "http://linklocal.example.test/hook",
    "http://mapped.example.test/hook",
    "http://nat64.example.test/hook",
    "http://sixtofour.example.test/hook",
    "http://multicast.example.test/hook",
]
ALLOWED = [
    f"http://{PUBLIC}/hook",
    f"https://{PUBLIC}:8443/x?y=1",
    "http://8.8.8.8:80/",
    "https://hook.example.test/h",
    "https://v6.example.test/h",
]
NOT_URLS = [  # IPv6 literals and user info are not accepted webhook URLs at all
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://user@127.0.0.1/",
]


def test_create_refuses_non_public_destinations(
    api: tuple[str, dict[str, str]], dns: FakeDNS
) -> None:
    wrong: list[str] = []
    with _agency(api) as agency:
        for url in REFUSED:
            r = agency.post("/v1/subscriptions", json={"url": url})
            body = r.json()
            if r.status_code != 400 or body.get("error") != "webhook_destination_refused":
                wrong.append(f"{url}: {r.status_code} {r.text[:200]}")
            elif body["detail"] != "the webhook URL's host is not a public address":
                wrong.append(f"{url}: detail {body['detail']!r}")
        for url in ALLOWED:
            r = agency.post("/v1/subscriptions", json={"url": url})
            if r.status_code != 201 or r.json()["url"] != url:
                wrong.append(f"{url}: {r.status_code} {r.text[:200]}")
        for url in NOT_URLS:
            r = agency.post("/v1/subscriptions", json={"url": url})
            if r.status_code not in (400, 422):
                wrong.append(f"{url}: {r.status_code} {r.text[:200]}")
        r = agency.post("/v1/subscriptions", json={"url": "http://nowhere.example.test/"})
        if r.status_code != 400 or r.json() != {
            "error": "webhook_destination_refused",
            "detail": "the webhook URL's host name does not resolve",
        }:
            wrong.append(f"unresolvable name: {r.status_code} {r.text[:200]}")
        listed = agency.get("/v1/subscriptions").json()["subscriptions"]
    assert wrong == []
    assert sorted(s["url"] for s in listed) == sorted(ALLOWED)
    assert "metadata.google.internal" not in dns.asked


def test_update_refuses_a_non_public_destination(api: tuple[str, dict[str, str]]) -> None:
    with _agency(api) as agency:
        created = agency.post("/v1/subscriptions", json={"url": "https://hook.example.test/h"})
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        for url in ("http://127.0.0.1:5432/", "http://2130706433:8190/", "http://localhost:22/"):
            r = agency.patch(f"/v1/subscriptions/{sid}", json={"url": url})
            assert r.status_code == 400, (url, r.text)
            assert r.json()["error"] == "webhook_destination_refused"
        ok = agency.patch(f"/v1/subscriptions/{sid}", json={"url": f"http://{PUBLIC}/new"})
        assert ok.status_code == 200, ok.text
        assert agency.get(f"/v1/subscriptions/{sid}").json()["url"] == f"http://{PUBLIC}/new"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer: tuple[int, dict[str, str]]) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.answer = answer
        self.hits: list[str] = []
        self.lock = threading.Lock()


class _Answer(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the server's ``answer`` and records its Host header."""

    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status, headers = self.server.answer
        with self.server.lock:
            self.server.hits.append(str(self.headers.get("Host")))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Endpoint:
    """A loopback HTTP(S) server that answers ``answer``; records Host and SNI."""

    def __init__(self, answer: tuple[int, dict[str, str]], tls: ssl.SSLContext | None = None):
        self.server = _Server(answer)
        self.sni: list[str | None] = []
        if tls is not None:

            def on_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
                self.sni.append(name)

            tls.sni_callback = on_sni
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def hits(self) -> list[str]:
        with self.server.lock:
            return list(self.server.hits)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoints() -> Iterator[list[Endpoint]]:
    made: list[Endpoint] = []
    yield made
    for e in made:
        e.close()


def _deliver_once(db: Engine, relay: WebhookRelay) -> None:
    """One relay round, by hand: fan out, claim, send, record."""
    while relay.tick() > 0:
        pass
    batch = relay.claim(50)
    assert batch, "nothing to deliver"
    relay.record([(d, relay.send(d)) for d in batch])


def _deliveries(api: tuple[str, dict[str, str]], sid: int) -> list[dict[str, Any]]:
    with _agency(api) as agency:
        rows = agency.get(f"/v1/subscriptions/{sid}/deliveries").json()["deliveries"]
    assert isinstance(rows, list)
    return rows


def test_relay_refuses_a_name_that_rebinds_to_loopback(
    db: Engine,
    api: tuple[str, dict[str, str]],
    dns: FakeDNS,
    webhook_policy: DestinationPolicy,
    endpoints: list[Endpoint],
) -> None:
    """Public when subscribed, 127.0.0.1 when the relay connects: nothing is sent, and
    the subscriber reads only "destination refused"."""
    target = Endpoint((401, {}))
    endpoints.append(target)
    with _agency(api) as agency:
        url = f"http://rebind.example.test:{target.port}/hook"
        created = agency.post("/v1/subscriptions", json={"url": url})
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    dns.answers["rebind.example.test"] = ["127.0.0.1"]
    make_entities(db, 2)
    relay = WebhookRelay(db, FAST, policy=webhook_policy)
    try:
        _deliver_once(db, relay)
    finally:
        relay.close()
    assert target.hits == []
    rows = _deliveries(api, sid)
    assert len(rows) == 2
    for row in rows:
        assert (row["status"], row["attempts"]) == ("pending", 1)  # retried as usual
        assert row["last_error"] == "destination refused"
        assert row["last_status_code"] is None
    assert dns.asked.count("rebind.example.test") >= 2  # resolved again to connect


def test_relay_records_destination_refused_not_what_the_port_answered(
    db: Engine,
    api: tuple[str, dict[str, str]],
    webhook_policy: DestinationPolicy,
    endpoints: list[Endpoint],
) -> None:
    """A subscription that points at loopback (stored before the rule, or allowed by a
    policy since changed) is refused at connect time: not "401 Unauthorized" from a
    listening port, not "Connection refused" from a closed one."""
    listening = Endpoint((401, {"WWW-Authenticate": "Basic"}))
    endpoints.append(listening)
    closed = free_port()
    client = add_client(db)
    urls = [f"http://127.0.0.1:{listening.port}/", f"http://localhost:{closed}/"]
    loopback = DestinationPolicy(allow_private=True, resolver=webhook_policy.resolver)
    ids = []
    with unit_of_work(factory(db)) as s:
        for url in urls:
            view, _secret = subs.create_subscription(s, client, url, policy=loopback)
            ids.append(view.id)
    make_entities(db, 1)
    relay = WebhookRelay(db, replace(FAST, max_attempts=1), policy=webhook_policy)
    try:
        _deliver_once(db, relay)
    finally:
        relay.close()
    assert listening.hits == []
    with unit_of_work(factory(db)) as s:
        rows = [subs.deliveries(s, sid) for sid in ids]
    for got in rows:
        assert [(r["status"], r["last_status_code"], r["last_error"]) for r in got] == [
            ("dead", None, "destination refused")
        ]


def test_other_failures_record_only_their_kind(
    db: Engine, dns: FakeDNS, endpoints: list[Endpoint]
) -> None:
    """Where the allow-list lets the relay connect, a failure still records only a
    status code or a kind ("could not connect"), and a redirect is not followed."""
    other = Endpoint((200, {}))
    redirect = Endpoint((302, {"Location": f"http://127.0.0.1:{other.port}/"}))
    answers_401 = Endpoint((401, {"WWW-Authenticate": "Basic"}))
    endpoints.extend([other, redirect, answers_401])
    policy = DestinationPolicy(allowed_networks=parse_networks("127.0.0.0/8"), resolver=dns.resolve)
    client = add_client(db)
    urls = [
        f"http://127.0.0.1:{redirect.port}/",
        f"http://127.0.0.1:{answers_401.port}/",
        f"http://127.0.0.1:{free_port()}/",
        "http://gone.example.test/",  # resolved when subscribed, not any more
    ]
    dns.answers["gone.example.test"] = [PUBLIC]
    ids = []
    with unit_of_work(factory(db)) as s:
        for url in urls:
            ids.append(subs.create_subscription(s, client, url, policy=policy)[0].id)
    del dns.answers["gone.example.test"]
    make_entities(db, 1)
    relay = WebhookRelay(db, replace(FAST, max_attempts=1), policy=policy)
    try:
        _deliver_once(db, relay)
    finally:
        relay.close()
    with unit_of_work(factory(db)) as s:
        got = [
            [(r["last_status_code"], r["last_error"]) for r in subs.deliveries(s, i)] for i in ids
        ]
    assert got == [
        [(302, "HTTP 302 Found")],
        [(401, "HTTP 401 Unauthorized")],
        [(None, "could not connect")],
        [(None, "destination refused: host name does not resolve")],
    ]
    assert other.hits == []  # the redirect was not followed
    assert len(redirect.hits) == len(answers_401.hits) == 1


@pytest.mark.parametrize(
    "env",
    [
        {"MDM_WEBHOOK_ALLOWED_NETWORKS": "10.20.0.0/16, 127.0.0.0/8"},
        {"MDM_WEBHOOK_ALLOW_PRIVATE": "true"},
    ],
)
def test_the_allow_list_lets_a_loopback_receiver_get_deliveries(
    db: Engine,
    receiver: Receiver,
    dns: FakeDNS,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = Settings()
    strict = DestinationPolicy(resolver=dns.resolve)
    allowed = replace(DestinationPolicy.from_settings(settings), resolver=dns.resolve)
    client = add_client(db)
    with unit_of_work(factory(db)) as s, pytest.raises(DestinationRefused):
        subs.create_subscription(s, client, receiver.url, policy=strict)
    with unit_of_work(factory(db)) as s:
        view, receiver.secret = subs.create_subscription(s, client, receiver.url, policy=allowed)
    receiver.start()
    make_entities(db, 2)
    relay = WebhookRelay(db, FAST, policy=allowed)
    try:
        _deliver_once(db, relay)
    finally:
        relay.close()
    assert len(receiver.accepted_ids()) == 2
    assert all(r.signature_ok for r in receiver.accepted())
    with unit_of_work(factory(db)) as s:
        assert {r["status"] for r in subs.deliveries(s, view.id)} == {"delivered"}


def _self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_a_pinned_https_connection_still_names_the_host(
    db: Engine, dns: FakeDNS, endpoints: list[Endpoint], tmp_path: Path
) -> None:
    """The relay connects to the address it checked, but TLS is still started with
    the URL's host (SNI, and the certificate is verified for that name) and the
    request's Host header still names it."""
    name = "hook.example.test"
    cert, key = _self_signed(tmp_path, name)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server = Endpoint((204, {}), tls=tls)
    endpoints.append(server)
    dns.answers[name] = ["127.0.0.1"]
    policy = DestinationPolicy(
        allowed_networks=parse_networks("127.0.0.1/32"), resolver=dns.resolve
    )
    client = add_client(db)
    with unit_of_work(factory(db)) as s:
        view, _secret = subs.create_subscription(
            s, client, f"https://{name}:{server.port}/hook", policy=policy
        )
    make_entities(db, 1)
    trust = ssl.create_default_context(cafile=str(cert))
    relay = WebhookRelay(
        db,
        FAST,
        policy=policy,
        client=pinned_client(policy, timeout=FAST.http_timeout_seconds, verify=trust),
    )
    try:
        _deliver_once(db, relay)
    finally:
        relay.close()
    assert server.sni == [name]
    assert server.hits == [f"{name}:{server.port}"]
    with unit_of_work(factory(db)) as s:
        assert [r["status"] for r in subs.deliveries(s, view.id)] == ["delivered"]


@pytest.mark.parametrize(
    ("address", "strict", "private", "listed"),
    [
        ("127.0.0.1", False, True, False),
        ("10.20.3.4", False, True, True),
        ("10.21.0.1", False, True, False),
        ("::ffff:10.20.3.4", False, True, True),
        ("169.254.169.254", False, False, True),  # listed as itself: the one way in
        ("169.254.169.253", False, False, False),
        ("::ffff:169.254.169.254", False, False, True),
        ("fd00:ec2::254", False, False, False),
        ("::7f00:1", False, True, False),  # IPv4-compatible 127.0.0.1
        ("64:ff9b::7f00:1", False, True, False),  # NAT64 127.0.0.1
        ("64:ff9b::808:808", True, True, True),  # NAT64 8.8.8.8
        ("2001:db8::1", False, True, False),
        ("2606:4700:4700::1111", True, True, True),
        (PUBLIC, True, True, True),
    ],
)
def test_policy_table(address: str, strict: bool, private: bool, listed: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert DestinationPolicy().allows(ip) is strict
    assert DestinationPolicy.from_settings(Settings(webhook_allow_private=True)).allows(ip) is (
        private
    )
    networks = "10.20.0.0/16, 169.254.169.254/32, 128.0.0.0/1"  # /1 holds 169.254/16: no matter
    settings = Settings(webhook_allowed_networks=networks)
    assert DestinationPolicy.from_settings(settings).allows(ip) is listed


def test_a_bad_allowed_network_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MDM_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/8, 10.1.2.300/32")
    with pytest.raises(ValidationError, match=r"'10\.1\.2\.300/32' is not an IP network"):
        Settings()
