"""Capture end to end through `hypercare up`: secrets sent through the gateway in a header,
the query string, a JSON, a form and a multipart body (and one the upstream answers with)
are found nowhere on disk — the SQLite file, its -wal file, every zstd frame in them, every
stored call block decompressed, the spool — nor in the process's logs; the redacted captures
are served by the API and shown on the console's call page."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zstandard

from hypercare.telemetry.redact import REDACTED
from hypercare.telemetry.segments import ZSTD_MAGIC, loads
from tests.gateway.helpers import Upstream
from tests.support import Up, start_up, wait_until

ADMIN_TOKEN = "hc_capture-e2e-admin-token-0123456789"
MARK = b"S3CRET"  # in every secret below, and nowhere else
SECRETS = {
    "header": "hdr-S3CRET-1",
    "query": "qry-S3CRET-2",
    "json": "json-S3CRET-3",
    "form": "form-S3CRET-4",
    "multipart": "mp-S3CRET-5",
    "response": "resp-S3CRET-6",
}


CONFIG = (
    "gateway:\n"
    "  upstreams:\n    shop: {{targets: ['{upstream}']}}\n"
    "  routes:\n    - {{name: shop, match: {{path: /*}}, upstream: shop}}\n"
    "telemetry:\n  capture:\n    default: all\n    max_body_bytes: 4096\n"
)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[Up, Upstream]]:
    """`hypercare up` with capture on for every call, its data dir and log under `data`."""
    upstream = Upstream("shop")
    upstream.issued_token = SECRETS["response"]
    config = tmp_path / "hc.yaml"
    config.write_text(CONFIG.format(upstream=upstream.address))
    data = tmp_path / "data"
    data.mkdir()
    running: Up | None = None
    try:
        running = start_up(
            data,
            config=config,
            env={"HYPERCARE_ADMIN_TOKEN": ADMIN_TOKEN},
            log=data / "up.log",
        )
        yield running, upstream
    finally:
        if running is not None:
            running.stop()
        upstream.stop()


def zstd_frames(data: bytes) -> Iterator[bytes]:
    """What decompresses from every zstd frame start in raw bytes (as far as it goes: a
    frame spread over several database pages decompresses up to its first gap)."""
    at = data.find(ZSTD_MAGIC)
    while at >= 0:
        reader = zstandard.ZstdDecompressor().stream_reader(data[at:], read_across_frames=False)
        out = b""
        try:
            while chunk := reader.read(65536):
                out += chunk
                if len(out) > 64 << 20:
                    break
        except zstandard.ZstdError:
            pass
        yield out
        at = data.find(ZSTD_MAGIC, at + 1)


def scan(data_dir: Path) -> tuple[list[str], int]:
    """Where a secret was found: every file under the data dir (the store, its WAL, the
    spool, the log), every zstd frame in them, every stored block decompressed; and how
    many decompressed frames and blocks hold the redaction marker (so the scan is known
    to have looked inside them)."""
    found = []
    redacted = 0
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        if MARK in raw:
            found.append(str(path))
        for n, frame in enumerate(zstd_frames(raw)):
            if MARK in frame:
                found.append(f"{path} zstd frame {n}")
            redacted += REDACTED.encode() in frame
    db = sqlite3.connect(data_dir / "hypercare.db")
    try:
        for batch_id, block in db.execute("SELECT batch_id, calls FROM telemetry_segments"):
            text = repr(loads(block)).encode()
            if MARK in text:
                found.append(f"block of batch {batch_id}")
            redacted += REDACTED.encode() in text
    finally:
        db.close()
    return found, redacted


def send_secrets(gateway: str) -> dict[str, str]:
    """One call per place a secret can hide; returns request id by place."""
    ids = {place: f"capture-e2e-{place}" for place in SECRETS if place != "response"}
    with httpx.Client(base_url=gateway, timeout=10) as c:
        r = c.get(
            "/orders",
            headers={
                "x-request-id": ids["header"],
                "authorization": f"Bearer {SECRETS['header']}",
                "x-account-password": SECRETS["header"],
            },
        )
        assert r.status_code == 200
        r = c.get(
            f"/search?q=shoes&password={SECRETS['query']}", headers={"x-request-id": ids["query"]}
        )
        assert r.status_code == 200
        r = c.post(  # the upstream answers this one with a token of its own
            "/login",
            json={"user": "ann", "password": SECRETS["json"]},
            headers={"x-request-id": ids["json"]},
        )
        assert r.status_code == 200 and r.json()["access_token"] == SECRETS["response"]
        r = c.post(
            "/login",
            data={"user": "ann", "password": SECRETS["form"]},
            headers={"x-request-id": ids["form"]},
        )
        assert r.status_code == 200
        r = c.post(
            "/upload",
            data={"user": "ann", "client_secret": SECRETS["multipart"]},
            files={"note": ("note.txt", b"plain text", "text/plain")},
            headers={"x-request-id": ids["multipart"]},
        )
        assert r.status_code == 200
    return ids


def test_secrets_sent_through_the_gateway_are_stored_nowhere(up: tuple[Up, Upstream]) -> None:
    hc, upstream = up
    data = hc.log.parent
    ids = send_secrets(f"http://{hc.gateway}")
    assert len(upstream.requests) == 5  # the upstream itself got the real requests
    api = httpx.Client(
        base_url=hc.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    )

    def stored(rid: str) -> httpx.Response | None:
        r = api.get(f"/api/v1/calls/{rid}")
        assert r.status_code in (200, 404), r.text
        return r if r.status_code == 200 else None

    captures = {}
    for place, rid in ids.items():
        r = wait_until(lambda rid=rid: stored(rid), 60, f"call {rid} in the store")
        assert MARK not in r.content
        captures[place] = r.json()["capture"]
    api.close()

    headers = {n.lower(): v for n, v in captures["header"]["request_headers"]}
    assert headers["authorization"] == REDACTED and headers["x-account-password"] == REDACTED
    assert captures["query"]["query"] == f"q=shoes&password={REDACTED}"
    assert f'"password": "{REDACTED}"' in captures["json"]["request_body"]
    assert f'"access_token": "{REDACTED}"' in captures["json"]["response_body"]
    assert captures["form"]["request_body"] == f"user=ann&password={REDACTED}"
    multipart = captures["multipart"]["request_body"]
    assert f'name="client_secret"\r\n\r\n{REDACTED}' in multipart and "plain text" in multipart

    # the console's call page shows the redacted capture
    with httpx.Client(base_url=hc.url, timeout=60) as browser:
        browser.get("/signin")
        nonce = browser.cookies["hc_signin"]
        r = browser.post("/signin", data={"token": ADMIN_TOKEN, "csrf": nonce})
        assert r.status_code in (200, 303), r.text
        page = browser.get(f"/calls/{ids['query']}")
        assert page.status_code == 200
        assert f"q=shoes&amp;password={REDACTED}" in page.text and MARK not in page.content
        page = browser.get(f"/calls/{ids['json']}")
        assert REDACTED in page.text and "access_token" in page.text
        assert MARK not in page.content

    assert (data / "hypercare.db-wal").exists()  # scanned while the store is open
    found, redacted = scan(data)
    assert found == [] and redacted >= 2  # frames in the file or WAL, and the blocks
    output = hc.stop()
    found, redacted = scan(data)
    assert found == [] and redacted >= 2
    assert "Traceback" not in output
