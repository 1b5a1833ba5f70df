"""The pure head and upgrade decisions, without sockets."""

from __future__ import annotations

from hypercare.gateway import headers as hdr
from hypercare.gateway.checks import (
    Refusal,
    check_head,
    check_route,
    check_switch,
    upgrade_tokens,
    valid_websocket_key,
    websocket_accept,
    websocket_upgrade,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def test_check_route():
    def check(matched: bool, mna: bool = False, length: int | None = None) -> Refusal | None:
        return check_route(
            "POST", matched=matched, method_not_allowed=mna, content_length=length, max_body=10
        )

    assert check(True) is None and check(True, length=10) is None
    assert check(True, length=11) == Refusal(
        413, "too_large", "body_too_large", "the request body is too large"
    )
    assert check(False) == Refusal(404, "no_route", "no_route", "no route matches this request")
    assert check(False, mna=True, length=99) == Refusal(
        405, "no_route", "method_not_allowed", "POST is not allowed here"
    )


def test_check_head():
    assert check_head("GET", "1.1", b"/x", True) is None
    assert check_head("GET", "1.0", b"/x", False) is None  # HTTP/1.0 needs no Host
    assert check_head("GET", "2.0", b"/x", True) == Refusal(
        505, "bad_request", "bad_version", "HTTP/2.0 is not supported"
    )
    assert check_head("CONNECT", "1.1", b"a:443", True).status == 400
    assert check_head("GET", "1.1", b"http://a/x", True).status == 400
    assert check_head("GET", "1.1", b"/x", False).message == "the Host header is missing"


def test_websocket_accept_matches_rfc_6455_example():
    # RFC 6455 §1.3: this key yields this accept value.
    assert websocket_accept(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert valid_websocket_key(KEY) and valid_websocket_key(b" " + KEY + b" ")
    assert not valid_websocket_key(None)
    assert not valid_websocket_key(b"")
    assert not valid_websocket_key(b"c2hvcnQ=")  # base64, but not 16 bytes
    assert not valid_websocket_key(b"not base64!!")


def test_upgrade_tokens():
    assert upgrade_tokens(b"WebSocket") == {b"websocket"}
    assert upgrade_tokens(b"h2c, websocket/13 ,, TLS/1.2") == {b"h2c", b"websocket", b"tls"}


def test_websocket_upgrade_decision():
    ok = {"method": "GET", "version": "1.1", "key": KEY, "has_body": False}
    assert websocket_upgrade(b"websocket", allowed=True, **ok) is True
    assert websocket_upgrade(b"h2c, websocket", allowed=True, **ok) is True
    assert websocket_upgrade(b"websocket", allowed=False, **ok) is False  # route option off
    assert websocket_upgrade(b"h2c", allowed=True, **ok) is False  # other tokens: plain request
    assert websocket_upgrade(None, allowed=True, **ok) is False
    bad = websocket_upgrade(b"websocket", allowed=True, **(ok | {"method": "POST"}))
    assert isinstance(bad, Refusal) and bad.status == 400
    bad = websocket_upgrade(b"websocket", allowed=True, **(ok | {"key": None}))
    assert isinstance(bad, Refusal) and "Sec-WebSocket-Key" in bad.message
    bad = websocket_upgrade(b"websocket", allowed=True, **(ok | {"has_body": True}))
    assert isinstance(bad, Refusal)


def test_check_switch():
    good = [(b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]
    assert check_switch(True, KEY, b"websocket", good) is None
    assert check_switch(True, KEY, b"WebSocket", good) is None
    assert "did not ask" in (check_switch(False, None, b"websocket", good) or "")
    assert "other than websocket" in (check_switch(True, KEY, b"h2c", good) or "")
    assert "other than websocket" in (check_switch(True, KEY, None, good) or "")
    wrong = [(b"sec-websocket-accept", b"x3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]
    assert "Sec-WebSocket-Accept" in (check_switch(True, KEY, b"websocket", wrong) or "")
    assert check_switch(True, KEY, b"websocket", []) is not None
    assert check_switch(True, KEY, b"websocket", good + good) is not None


def test_take_query_key():
    assert hdr.take_query_key(b"/k") == (b"/k", None)
    assert hdr.take_query_key(b"/k?a=1") == (b"/k?a=1", None)
    assert hdr.take_query_key(b"/k?apikey=s%2Fecret") == (b"/k", b"s/ecret")
    assert hdr.take_query_key(b"/k?a=1&api_key=one&b=2&apikey=two") == (b"/k?a=1&b=2", b"one")
    assert hdr.take_query_key(b"/k?API%5Fkey=x&apikeys=y") == (b"/k?API%5Fkey=x&apikeys=y", None)
    assert hdr.take_query_key(b"/k?api%5Fkey=x") == (b"/k", b"x")


def test_client_address_extends_forwarded_for_with_the_trusted_peer():
    nets = hdr.parse_networks(["10.0.0.0/8"])
    assert hdr.client_address("203.0.113.5", b"1.2.3.4", nets) == ("203.0.113.5", None)
    assert hdr.client_address("10.0.0.2", None, nets) == ("10.0.0.2", None)
    assert hdr.client_address("10.0.0.2", b"1.2.3.4, 10.0.0.9", nets) == (
        "1.2.3.4",
        b"1.2.3.4, 10.0.0.9, 10.0.0.2",
    )
    head = hdr.upstream_request_head(
        b"GET",
        b"/",
        [],
        host=b"a",
        client_ip="1.2.3.4",
        prior_xff=b"1.2.3.4, 10.0.0.2",
        proto=b"http",
        rid=b"r",
        tparent=b"t",
        framing=b"",
    )
    assert b"x-forwarded-for: 1.2.3.4, 10.0.0.2\r\n" in head
    assert b"forwarded: for=1.2.3.4;" in head
