"""Pure response decisions: which timeline entries notify, where they go, when to retry,
how deliveries and acknowledgement links are signed, and which URLs may be called.

No I/O here; every function takes plain values (the resolver of `check_url` is handed its
answers), so each rule is tested without sockets or a database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from hypercare.bounds import MAX_ID
from hypercare.detection.rules import WindowStats
from hypercare.response.config import PolicyConfig, RuleConfig
from hypercare.response.oncall import resolve


class DeliveryState(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"  # will be retried at next_attempt_at
    dead = "dead"  # gave up after max_attempts (replay brings it back)


@dataclass(frozen=True, slots=True)
class IssueFacts:
    """What routing looks at."""

    priority: str
    component: str | None
    route: str | None
    labels: Sequence[str]
    source: str


def change_of(kind: str, data: Mapping[str, Any]) -> str | None:
    """The kind of change a timeline entry announces, or None when it notifies nobody.

    ``created``, ``priority``, ``status``, ``sla`` (only at-risk and breached, not back on
    track), ``escalation`` and ``acknowledged`` notify; comments, field edits, signals and the
    response domain's own delivery entries do not (that would loop)."""
    if kind in ("created", "priority", "status", "escalation", "acknowledged"):
        return kind
    if kind == "sla" and data.get("to") in ("at_risk", "breached"):
        return "sla"
    return None


def _one_of(wanted: Sequence[str], value: str | None) -> bool:
    return not wanted or (value is not None and value in wanted)


def matches(rule: RuleConfig, facts: IssueFacts, change: str) -> bool:
    m = rule.match
    return (
        _one_of(m.priority, facts.priority)
        and _one_of(m.component, facts.component)
        and _route_matches(m.route, facts.route)
        and (not m.labels or any(label in facts.labels for label in m.labels))
        and _one_of(m.source, facts.source)
        and (not m.events or change in m.events)
    )


def _route_matches(patterns: Sequence[str], route: str | None) -> bool:
    """Exact routes, or prefixes written with a trailing ``*`` (``/api/pay*``)."""
    if not patterns:
        return True
    if route is None:
        return False
    return any(route.startswith(p[:-1]) if p.endswith("*") else route == p for p in patterns)


def targets(rules: Iterable[RuleConfig], facts: IssueFacts, change: str) -> list[str]:
    """The names to notify for one change, each once, in rule order."""
    out: list[str] = []
    for rule in rules:
        if not matches(rule, facts, change):
            continue
        for name in rule.notify:
            if name not in out:
                out.append(name)
        if rule.stop:
            break
    return out


# --- retries ------------------------------------------------------------------------------


def backoff(attempt: int, *, base: timedelta, cap: timedelta, jitter: float) -> timedelta:
    """Delay before retry number `attempt` (1 = the first retry): base·2^(attempt-1), capped,
    then scaled by a jitter factor in [0.5, 1.0) so that many failed deliveries to one
    receiver do not come back in lockstep. `jitter` is a random number in [0, 1)."""
    exponent = min(max(attempt - 1, 0), 30)
    delay = min(base.total_seconds() * (2**exponent), cap.total_seconds())
    return timedelta(seconds=delay * (0.5 + min(max(jitter, 0.0), 0.999999) / 2))


def after_attempt(
    *, ok: bool, attempts: int, max_attempts: int, now: datetime, delay: timedelta
) -> tuple[DeliveryState, datetime | None]:
    """The state and next attempt time once attempt number `attempts` has ended."""
    if ok:
        return DeliveryState.sent, None
    if attempts >= max_attempts:
        return DeliveryState.dead, None
    return DeliveryState.failed, now + delay


def retryable(status: int | None) -> bool:
    """Transport errors, 408, 429 and 5xx are worth retrying; other 4xx mean the message or
    the configuration is wrong, and repeating it changes nothing."""
    return status is None or status in (408, 425, 429) or status >= 500


# --- signatures ---------------------------------------------------------------------------


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Hypercare-Signature`` header: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of
    "<t>.<body>">``. A receiver recomputes v1 with its copy of the secret and rejects the
    request when it differs or `t` is too old (replayed)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_webhook_signature(
    secret: str, header: str, body: bytes, now: int, tolerance: int = 300
) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - t) > tolerance:
        return False
    expected = webhook_signature(secret, t, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass(frozen=True, slots=True)
class AckClaim:
    issue_id: int
    expires: int
    nonce: str


class AckRefusal(StrEnum):
    malformed = "malformed"
    tampered = "tampered"
    expired = "expired"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_ack(key: bytes, claim: AckClaim) -> str:
    """A URL-safe token ``<issue>.<expires>.<nonce>.<mac>`` for the one-click link."""
    payload = f"{claim.issue_id}.{claim.expires}.{claim.nonce}"
    mac = hmac.new(key, b"ack:" + payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def verify_ack(key: bytes, token: str, now: int) -> AckClaim | AckRefusal:
    parts = token.split(".")
    if len(token) > 300 or len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
        return AckRefusal.malformed
    if len(parts[0]) > 12 or len(parts[1]) > 12 or not parts[2] or len(parts[2]) > 64:
        return AckRefusal.malformed
    claim = AckClaim(int(parts[0]), int(parts[1]), parts[2])
    if not 1 <= claim.issue_id <= MAX_ID:
        return AckRefusal.malformed
    expected = sign_ack(key, claim).rsplit(".", 1)[1]
    if not hmac.compare_digest(expected, parts[3]):
        return AckRefusal.tampered
    if now >= claim.expires:
        return AckRefusal.expired
    return claim


# --- outbound URL guard -------------------------------------------------------------------


def check_url(url: str, addresses: Sequence[str], allow: Sequence[str]) -> str | None:
    """Why `url` must not be called, or None. For URLs that arrive through the API or from
    the public (never the operator's config file): refused when any address it resolves to
    is private, loopback, link-local, multicast, reserved or unspecified, unless its host or
    that address falls in `allow` (hostnames, addresses or CIDRs from the config)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"only http and https URLs are allowed (got {parts.scheme or 'none'!r})"
    host = (parts.hostname or "").lower()
    if not host:
        return "the URL has no host"
    if parts.username or parts.password:
        return "credentials in the URL are not allowed"
    if host in (a.lower() for a in allow):
        return None
    if not addresses:
        return f"{host} does not resolve"
    networks = []
    for entry in allow:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            return f"{host} resolved to an invalid address {text!r}"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in networks):
            continue
        if (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
        ):
            return (
                f"{host} resolves to {ip}, a private or local address; name it in "
                "response.allow_private to allow it"
            )
    return None


# --- the outbox cursor --------------------------------------------------------------------


def advance_cursor(
    cursor: int,
    seen: Set[int],
    gaps: Mapping[int, float],
    *,
    now: float,
    wait: float,
    limit: int = 100_000,
) -> tuple[int, dict[int, float]]:
    """Move the outbox cursor over every id it has seen, stopping at the first hole.

    Timeline ids are handed out when a row is inserted, not when its transaction commits:
    on PostgreSQL id 11 may be committed while id 10 is still open, and a rolled-back id
    never appears at all. The cursor therefore stops at a hole until it has been waited
    for `wait` seconds (`gaps` holds when each hole was first noticed); ids seen beyond it
    are remembered by the caller and not looked at twice. Returns the new cursor and the
    holes still waited for. `limit` bounds the walk (holes past it are found later)."""
    top = max(seen, default=cursor)
    new_cursor = cursor
    waiting: dict[int, float] = {}
    moving = True
    for i in range(cursor + 1, min(top, cursor + limit) + 1):
        if i in seen:
            if moving:
                new_cursor = i
            continue
        first = gaps.get(i, now)
        if moving and now - first >= wait:
            new_cursor = i
            continue
        moving = False
        waiting[i] = first
    return new_cursor, waiting


# --- escalation policies ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EscalationState:
    """Where one issue's run of a policy stands. `done` counts the steps executed over all
    repeats; `last_at` is when the latest ran. SLA at-risk and breached raise `advance_to`:
    steps below it are due at once instead of after their wait."""

    started_at: datetime
    done: int = 0
    last_at: datetime | None = None
    advance_to: int = 0
    acknowledged: bool = False


@dataclass(frozen=True, slots=True)
class DueStep:
    index: int  # over all repeats, from 0
    round: int  # which repeat, from 1
    number: int  # which step of the policy, from 1
    notify: tuple[str, ...]
    due_at: datetime


@dataclass(frozen=True, slots=True)
class EscalationPlan:
    due: tuple[DueStep, ...]
    # when the step after these falls due (None: the policy is finished or stopped)
    next_at: datetime | None

    @property
    def finished(self) -> bool:
        return not self.due and self.next_at is None


def policy_length(policy: PolicyConfig) -> int:
    return len(policy.steps) * policy.repeat


def _step(policy: PolicyConfig, index: int, due_at: datetime) -> DueStep:
    n = len(policy.steps)
    step = policy.steps[index % n]
    return DueStep(index, index // n + 1, index % n + 1, tuple(step.notify), due_at)


def next_steps(policy: PolicyConfig, state: EscalationState, now: datetime) -> EscalationPlan:
    """The steps of `policy` due at `now` and when the following one is due.

    The first step is due when the run starts; each later step `wait` after the one before
    it ran (so a late pass does not fire a burst: waits are between pages, not from the
    start). Steps below `advance_to` are due now. Acknowledgement stops everything.
    A step without a wait lets the next one run in the same pass. After the last step
    `next_at` is when its wait ends: the run finishes then (no steps, no `next_at`)."""
    total = policy_length(policy)
    if state.acknowledged or state.done >= total or not policy.steps:
        return EscalationPlan((), None)
    due: list[DueStep] = []
    index, last = state.done, state.last_at
    while index < total:
        if index == 0 or last is None:
            due_at = state.started_at
        else:
            due_at = last + policy.steps[(index - 1) % len(policy.steps)].wait
        if index < state.advance_to:
            due_at = min(due_at, now)
        if due_at > now:
            return EscalationPlan(tuple(due), due_at)
        due.append(_step(policy, index, due_at))
        index, last = index + 1, now
        if policy.steps[(index - 1) % len(policy.steps)].wait and index >= state.advance_to:
            # after the last step too: the run is over once its wait has passed
            following = now + policy.steps[(index - 1) % len(policy.steps)].wait
            return EscalationPlan(tuple(due), following)
    return EscalationPlan(tuple(due), None)


def policies_for(
    policies: Iterable[PolicyConfig], priority: str, escalation_path: Sequence[str]
) -> list[str]:
    """Policies that serve an issue by the matrix: those whose `levels` name its priority
    or one of the escalation path entries of its priority (``24/7 on-call engineering``)."""
    wanted = {priority, *escalation_path}
    return [p.name for p in policies if any(level in wanted for level in p.levels)]


def quiet_until(start: time, end: time, zone: ZoneInfo, now: datetime) -> datetime | None:
    """When a person's quiet hours (local `start`–`end`, past midnight when `end` <=
    `start`) that contain `now` end, or None when `now` is outside them."""
    here = now.astimezone(zone)
    t = here.time().replace(tzinfo=None)
    today = here.date()
    if start < end:
        inside = start <= t < end
        end_day = today
    else:
        inside = t >= start or t < end
        end_day = today + timedelta(days=1) if t >= start else today
    if not inside:
        return None
    return resolve(datetime.combine(end_day, end), zone)


# --- impact-confirmed paging --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Impact:
    """Whether users are hurt: True, False, or None when the telemetry cannot tell (then
    on-call is paged as usual). `text` gives the numbers that decided."""

    impact: bool | None
    text: str


def system_alert(labels: Sequence[str], sources: Sequence[str]) -> bool:
    """An issue opened from one of the alerting tools in `sources` (``source:grafana``)."""
    return any(label in {f"source:{s}" for s in sources} for label in labels)


def impact_verdict(
    stats: Sequence[WindowStats],
    *,
    window: timedelta,
    min_requests: int,
    error_rate: float,
    p95_ms: float | None,
) -> Impact:
    """Decide from the gateway's live windows of the issue's routes (summed; the worst p95)."""
    routes = ", ".join(s.route for s in stats) or "no route"
    requests = sum(s.requests for s in stats)
    failed = sum(s.status_5xx + s.gateway_errors for s in stats)
    p95s = [s.p95 for s in stats if s.p95 is not None]
    p95 = max(p95s) if p95s else None
    minutes = window.total_seconds() / 60
    span = f"{minutes:g} min" if minutes >= 1 else f"{window.total_seconds():g} s"
    if requests < min_requests:
        return Impact(
            None,
            f"{routes}: {requests} requests in the last {span} (fewer than {min_requests}): "
            "the gateway cannot tell, so on-call is paged",
        )
    rate = failed / requests
    p95_text = f"p95 {p95:.0f} ms" if p95 is not None else "p95 unknown"
    numbers = (
        f"{routes}: {requests} requests in the last {span}, {failed} failed "
        f"({rate:.1%}, threshold {error_rate:.1%}), {p95_text}"
        + (f" (threshold {p95_ms:.0f} ms)" if p95_ms is not None else "")
    )
    hurt = rate >= error_rate or (p95_ms is not None and p95 is not None and p95 >= p95_ms)
    if hurt:
        return Impact(True, f"user impact confirmed: {numbers}")
    return Impact(False, f"no user impact: {numbers}")


# --- storms -------------------------------------------------------------------------------


def storm_message(
    issues: Sequence[Mapping[str, Any]], *, within: timedelta, paging: bool = False
) -> dict[str, Any]:
    """One message standing for the "created" messages of `issues` (message snapshots, in
    order), or with `paging` for their escalation pages. Keeps the fields every channel
    format reads: the first issue's id and links (and whom a page is for), the most urgent
    priority (the matrix names sort P1 < P2 ...), a title that counts them, and a text
    listing each."""
    first = issues[0]
    seconds = within.total_seconds()
    lines = [f"#{m['issue_id']} [{m['priority']}] {m['title']} — {m['issue_url']}" for m in issues]
    return {
        **first,
        "event": "storm_page" if paging else "storm",
        "priority": min(str(m["priority"]) for m in issues),
        "title": (
            f"Storm: {len(issues)} issues paging (a storm of new issues within {seconds:g} s)"
            if paging
            else f"Storm: {len(issues)} new issues (more than usual within {seconds:g} s)"
        ),
        "text": "\n".join(lines[:100])
        + (f"\n… and {len(lines) - 100} more" if len(lines) > 100 else ""),
        "issues": [m["issue_id"] for m in issues],
    }


# --- mentions -----------------------------------------------------------------------------

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{6,20}$")
_UPN = re.compile(r"^[^@\s<>]{1,200}@[^@\s<>]{1,200}$")


def mention(kind: str, target: str | None, name: str) -> dict[str, str] | None:
    """A real mention of a person's contact, when its `target` says who they are there: a
    Slack user id (``U024BE7LH``, rendered ``<@U024BE7LH>``) or a Teams user principal name
    (``ann@contoso.com``, an Adaptive Card ``msteams.entities`` mention). Other targets
    (``@ann``) stay plain text: incoming webhooks do not resolve names."""
    value = (target or "").strip()
    if kind == "slack" and _SLACK_USER.match(value):
        return {"kind": "slack", "id": value, "name": name}
    if kind == "teams" and _UPN.match(value):
        return {"kind": "teams", "id": value, "name": name}
    return None
