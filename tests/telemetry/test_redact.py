"""Redaction of captured headers and bodies, and capture policies."""

from __future__ import annotations

import json

import pytest

from hypercare.config import parse_config
from hypercare.errors import ConfigError
from hypercare.telemetry.capture import Policy, parse_policy, should_capture
from hypercare.telemetry.redact import REDACTED, Redactor


def test_secret_headers_are_redacted_case_insensitively() -> None:
    r = Redactor(headers=["X-Session"])
    out = dict(
        r.redact_headers(
            [
                ("Authorization", "Bearer abc"),
                ("cookie", "sid=1"),
                ("Set-Cookie", "sid=2"),
                ("X-API-Key", "k"),
                ("x-session", "s"),
                ("Content-Type", "application/json"),
            ]
        )
    )
    assert out == {
        "Authorization": REDACTED,
        "cookie": REDACTED,
        "Set-Cookie": REDACTED,
        "X-API-Key": REDACTED,
        "x-session": REDACTED,
        "Content-Type": "application/json",
    }


def test_nested_json_fields_matching_patterns_are_redacted() -> None:
    r = Redactor(fields=["iban"])
    body = {
        "user": {"name": "ann", "password": "hunter2", "cards": [{"card_number": "4111"}]},
        "items": [{"id": 1, "access_token": "t", "IBAN": "DE00"}],
        "Secret": "x",
        "note": "password is not a key here",
    }
    out = json.loads(r.redact_body(json.dumps(body).encode()) or "")
    assert out["user"]["password"] == REDACTED
    assert out["user"]["name"] == "ann"
    assert out["user"]["cards"] == REDACTED  # "card*" matches the key itself
    assert out["items"][0] == {"id": 1, "access_token": REDACTED, "IBAN": REDACTED}
    assert out["Secret"] == REDACTED
    assert out["note"] == "password is not a key here"


def test_non_json_bodies_are_redacted_best_effort() -> None:
    r = Redactor()
    truncated = b'{"user": "ann", "password": "hunter2", "token": "abc'
    text = r.redact_body(truncated) or ""
    assert "hunter2" not in text and "abc" not in text and '"user": "ann"' in text
    form = r.redact_body(
        b"user=ann&password=hunter2&card_no=4111", "application/x-www-form-urlencoded"
    )
    assert form == f"user=ann&password={REDACTED}&card_no={REDACTED}"
    plain = r.redact_body(b"login ok; secret=s3cr3t token=xyz user=ann") or ""
    assert "s3cr3t" not in plain and "xyz" not in plain and "user=ann" in plain
    assert r.redact_body(b"\xff\xfe\x00binary") == "[binary body, 9 bytes, not stored]"
    assert r.redact_body(b"") is None


def test_capture_policies() -> None:
    assert parse_policy("off") == Policy("off")
    assert parse_policy(False) == Policy("off")
    assert parse_policy("sample: 5%") == Policy("sample", 0.05)
    assert str(parse_policy("sample:5 %")) == "sample: 5%"
    for bad in ("sometimes", "sample: 0%", "sample: 150%", 3):
        with pytest.raises(ValueError, match="capture policy|percentage"):
            parse_policy(bad)
    assert should_capture(Policy("all"), 200, "", 0.99)
    assert not should_capture(Policy("off"), 500, "timeout", 0.0)
    assert should_capture(Policy("errors"), 502, "", 0.5)
    assert should_capture(Policy("errors"), 200, "client_closed", 0.5)
    assert not should_capture(Policy("errors"), 200, "", 0.0)
    assert should_capture(Policy("sample", 0.05), 200, "", 0.04)
    assert not should_capture(Policy("sample", 0.05), 200, "", 0.06)


def test_telemetry_config_section() -> None:
    cfg = parse_config(
        "telemetry:\n"
        "  capture:\n"
        "    default: errors\n"
        "    routes:\n"
        "      orders: 'sample: 5%'\n"
        "  retention:\n"
        "    calls: 24h\n"
    )
    t = cfg.telemetry
    assert t.capture.policy_for("orders") == Policy("sample", 0.05)
    assert t.capture.policy_for("other") == Policy("errors")
    assert t.retention.calls.total_seconds() == 86400
    with pytest.raises(ConfigError, match=r"<config>:5: telemetry.capture.routes.orders"):
        parse_config(
            "telemetry:\n  capture:\n    default: off\n    routes:\n      orders: sometimes\n"
        )


def test_header_names_are_matched_by_glob_patterns() -> None:
    r = Redactor(headers=["x-*-session"])
    out = dict(
        r.redact_headers(
            [
                ("X-Account-Password", "p"),
                ("X-Client-Secret", "s"),
                ("X-Refresh-Token", "t"),
                ("X-Shop-Session", "s2"),
                ("X-Session-Id", "kept"),
                ("Accept", "*/*"),
            ]
        )
    )
    assert out == {
        "X-Account-Password": REDACTED,
        "X-Client-Secret": REDACTED,
        "X-Refresh-Token": REDACTED,
        "X-Shop-Session": REDACTED,
        "X-Session-Id": "kept",
        "Accept": "*/*",
    }


def test_query_strings_keep_their_form_and_lose_secret_values() -> None:
    r = Redactor(fields=["otp"])
    assert r.redact_query("") == ""
    assert (
        r.redact_query("q=shoes&password=hunter2&api%5Ftoken=t0k&OTP=123456&flag&page=2")
        == f"q=shoes&password={REDACTED}&api%5Ftoken={REDACTED}&OTP={REDACTED}&flag&page=2"
    )
    # a pair cut off at the end of a truncated form body
    assert r.redact_query("user=ann&passw") == "user=ann&passw"
    assert r.redact_query("user=ann&password=hun") == f"user=ann&password={REDACTED}"


MULTIPART = (
    b"--b0undary\r\n"
    b'Content-Disposition: form-data; name="user"\r\n\r\nann\r\n'
    b"--b0undary\r\n"
    b'Content-Disposition: form-data; name="password"\r\n\r\nhunter2\r\n'
    b"--b0undary\r\n"
    b'Content-Disposition: form-data; name="meta"\r\nContent-Type: application/json\r\n\r\n'
    b'{"refresh_token": "r3fr"}\r\n'
    b"--b0undary\r\n"
    b'Content-Disposition: form-data; name="file"; filename="a.bin"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n\xff\xfe\x00hunter2\r\n"
    b"--b0undary--\r\n"
)


def test_multipart_parts_are_redacted_by_field_name_and_content() -> None:
    r = Redactor()
    out = r.redact_body(MULTIPART, "multipart/form-data; boundary=b0undary") or ""
    assert "hunter2" not in out and "r3fr" not in out
    assert f'name="password"\r\n\r\n{REDACTED}\r\n--b0undary' in out
    assert 'name="user"\r\n\r\nann\r\n--b0undary' in out
    assert f'{{"refresh_token": "{REDACTED}"}}\r\n' in out
    assert "[binary part, 10 bytes]" in out and out.endswith("--b0undary--\r\n")
    # cut inside the secret value: the rest of that part is still the marker
    cut = MULTIPART[: MULTIPART.index(b"hunter2") + 4]
    out = r.redact_body(cut, 'multipart/form-data; boundary="b0undary"', truncated=True) or ""
    assert "hunt" not in out and out.endswith(REDACTED)


def test_a_truncated_body_cut_inside_a_character_is_still_text() -> None:
    r = Redactor()
    body = '{"name": "Zoë", "password": "pässword"}'.encode()
    cut = body[: body.index("ä".encode()) + 1]
    assert r.redact_body(cut, "application/json", truncated=True) == (
        f'{{"name": "Zoë", "password": "{REDACTED}"'
    )
    assert r.redact_body(cut, "application/json").startswith("[binary body")  # not cut: binary


def test_none_is_off() -> None:
    assert parse_policy("none") == Policy("off")


def test_json_nested_too_deep_to_walk_is_redacted_as_text() -> None:
    r = Redactor()
    body = b"[" * 5000 + b'{"password": "hunter2"}' + b"]" * 5000
    out = r.redact_body(body, "application/json") or ""
    assert "hunter2" not in out and f'"password": "{REDACTED}"' in out


def test_multipart_without_its_boundary_in_the_content_type_is_still_redacted() -> None:
    r = Redactor()
    for ctype in ("multipart/form-data", "text/plain", "", "multipart/form-data; boundary=other"):
        out = r.redact_body(MULTIPART, ctype) or ""
        assert "hunter2" not in out and f'name="password"\r\n\r\n{REDACTED}' in out, ctype
