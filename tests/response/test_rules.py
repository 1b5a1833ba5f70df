from datetime import UTC, datetime, timedelta

import pytest

from hypercare.response import rules
from hypercare.response.config import RuleConfig, RuleMatch
from hypercare.response.rules import AckClaim, AckRefusal, DeliveryState, IssueFacts

FACTS = IssueFacts(
    priority="P1", component="payments", route="/api/pay", labels=["checkout"], source="hypercare"
)


@pytest.mark.parametrize(
    ("kind", "data", "change"),
    [
        ("created", {}, "created"),
        ("priority", {"from": "P3", "to": "P1"}, "priority"),
        ("status", {"to": "resolved"}, "status"),
        ("sla", {"to": "breached"}, "sla"),
        ("sla", {"to": "at_risk"}, "sla"),
        ("sla", {"to": "ok"}, None),
        ("escalation", {"level": 1}, "escalation"),
        ("acknowledged", {}, "acknowledged"),
        ("comment", {}, None),
        ("notification", {"state": "sent"}, None),
        ("field", {"field": "title"}, None),
    ],
)
def test_which_entries_notify(kind: str, data: dict[str, str], change: str | None) -> None:
    assert rules.change_of(kind, data) == change


def _rule(notify: list[str], stop: bool = False, **match: list[str]) -> RuleConfig:
    return RuleConfig(match=RuleMatch(**match), notify=notify, stop=stop)  # type: ignore[arg-type]


def test_routing_matches_every_given_key_and_dedups_targets() -> None:
    routing = [
        _rule(["pager"], priority=["P1"]),
        _rule(["team", "pager"], component=["payments"]),
        _rule(["frontend"], component=["web"]),
        _rule(["shop"], route=["/api/*"]),
        _rule(["labelled"], labels=["checkout", "x"]),
        _rule(["alerts"], source=["alertmanager"]),
        _rule(["only-created"], events=["created"]),
    ]
    assert rules.targets(routing, FACTS, "created") == [
        "pager",
        "team",
        "shop",
        "labelled",
        "only-created",
    ]
    assert rules.targets(routing, FACTS, "status") == ["pager", "team", "shop", "labelled"]
    p4 = IssueFacts(priority="P4", component=None, route=None, labels=[], source="api")
    assert rules.targets(routing, p4, "status") == []


def test_a_stop_rule_ends_routing() -> None:
    routing = [_rule(["a"], stop=True, priority=["P1"]), _rule(["b"])]
    assert rules.targets(routing, FACTS, "created") == ["a"]
    p2 = IssueFacts(priority="P2", component=None, route=None, labels=[], source="x")
    assert rules.targets(routing, p2, "created") == ["b"]


def test_backoff_doubles_is_capped_and_jittered() -> None:
    base, cap = timedelta(seconds=2), timedelta(seconds=60)
    top = [rules.backoff(n, base=base, cap=cap, jitter=0.999999).total_seconds() for n in (1, 2, 3)]
    assert top == pytest.approx([2, 4, 8], rel=1e-3)
    low = rules.backoff(3, base=base, cap=cap, jitter=0.0).total_seconds()
    assert low == pytest.approx(4)  # half of 8: jitter spreads retries over [d/2, d)
    assert rules.backoff(40, base=base, cap=cap, jitter=0.999999) <= cap


def test_after_attempt_states() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    delay = timedelta(seconds=5)
    ok = rules.after_attempt(ok=True, attempts=1, max_attempts=3, now=now, delay=delay)
    assert ok == (DeliveryState.sent, None)
    retry = rules.after_attempt(ok=False, attempts=2, max_attempts=3, now=now, delay=delay)
    assert retry == (DeliveryState.failed, now + delay)
    dead = rules.after_attempt(ok=False, attempts=3, max_attempts=3, now=now, delay=delay)
    assert dead == (DeliveryState.dead, None)


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (None, True),
        (500, True),
        (503, True),
        (429, True),
        (408, True),
        (400, False),
        (404, False),
        (410, False),
    ],
)
def test_retryable(status: int | None, retry: bool) -> None:
    assert rules.retryable(status) is retry


def test_webhook_signature_round_trip_and_tampering() -> None:
    body = b'{"issue":{"id":1}}'
    header = rules.webhook_signature("s3cret-key-0123456789", 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=")
    assert len(header.split("v1=")[1]) == 64
    assert rules.verify_webhook_signature("s3cret-key-0123456789", header, body, 1_700_000_010)
    assert not rules.verify_webhook_signature(
        "s3cret-key-0123456789", header, body + b" ", 1_700_000_010
    )
    assert not rules.verify_webhook_signature("other-key-0123456789", header, body, 1_700_000_010)
    # too old: a replayed request
    assert not rules.verify_webhook_signature("s3cret-key-0123456789", header, body, 1_700_009_999)


def test_ack_tokens() -> None:
    key = b"k" * 32
    token = rules.sign_ack(key, AckClaim(issue_id=42, expires=2000, nonce="abc"))
    assert rules.verify_ack(key, token, now=1999) == AckClaim(42, 2000, "abc")
    assert rules.verify_ack(key, token, now=2000) is AckRefusal.expired
    assert rules.verify_ack(b"x" * 32, token, now=1) is AckRefusal.tampered
    forged = token.replace("42.", "43.", 1)
    assert rules.verify_ack(key, forged, now=1) is AckRefusal.tampered
    later = token.replace(".2000.", ".9999.", 1)
    assert rules.verify_ack(key, later, now=1) is AckRefusal.tampered
    huge = rules.sign_ack(key, AckClaim(issue_id=10**11, expires=2000, nonce="abc"))
    assert rules.verify_ack(key, huge, now=1) is AckRefusal.malformed  # not a row id
    for bad in ("", "a.b.c.d", "1.2.3", "x" * 400, "1.2..mac"):
        assert rules.verify_ack(key, bad, now=1) is AckRefusal.malformed


@pytest.mark.parametrize(
    ("url", "addresses", "allow", "refused"),
    [
        ("https://hooks.example.com/x", ["93.184.216.34"], [], None),
        ("http://127.0.0.1:9000/", ["127.0.0.1"], [], "private or local"),
        ("http://localhost/", ["127.0.0.1", "::1"], [], "private or local"),
        ("http://internal/", ["10.1.2.3"], [], "private or local"),
        ("http://meta/", ["169.254.169.254"], [], "private or local"),
        ("http://v6/", ["fe80::1%eth0"], [], "private or local"),
        ("http://mapped/", ["::ffff:192.168.0.1"], [], "private or local"),
        ("http://zero/", ["0.0.0.0"], [], "private or local"),
        ("http://mixed/", ["93.184.216.34", "10.0.0.1"], [], "private or local"),
        ("http://internal/", ["10.1.2.3"], ["10.0.0.0/8"], None),
        ("http://internal/", ["10.1.2.3"], ["internal"], None),
        ("http://localhost:8000/", ["127.0.0.1"], ["127.0.0.1"], None),
        ("ftp://example.com/", ["93.184.216.34"], [], "only http and https"),
        ("http://user:pw@example.com/", ["93.184.216.34"], [], "credentials"),
        ("http:///nohost", [], [], "no host"),
        ("http://nowhere.invalid/", [], [], "does not resolve"),
    ],
)
def test_url_guard(url: str, addresses: list[str], allow: list[str], refused: str | None) -> None:
    reason = rules.check_url(url, addresses, allow)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def test_cursor_moves_over_seen_ids_and_waits_at_a_hole() -> None:
    # 11 and 12 seen, 13 missing (a transaction still open), 14 seen
    cursor, gaps = rules.advance_cursor(10, {11, 12, 14}, {}, now=100.0, wait=30)
    assert cursor == 12 and gaps == {13: 100.0}
    # 13 commits: the cursor moves past it and 14
    assert rules.advance_cursor(12, {13, 14}, gaps, now=101.0, wait=30) == (14, {})
    # 13 never comes (rolled back): given up after `wait`
    assert rules.advance_cursor(12, {14}, gaps, now=129.0, wait=30) == (12, {13: 100.0})
    assert rules.advance_cursor(12, {14}, gaps, now=130.0, wait=30) == (14, {})
    # nothing new: nothing moves
    assert rules.advance_cursor(14, set(), {}, now=200.0, wait=30) == (14, {})
