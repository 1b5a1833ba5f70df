"""The call record: one compact, immutable row per proxied request, and where records go.

Records are built on the hot path, so they are plain NamedTuples of primitives: no nested
objects, no datetimes (``time`` is Unix seconds as a float). The telemetry shipper and the
in-worker metrics are both `RecordSink`s.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hypercare.telemetry.capture import CallCapture

# Error kinds a record can carry in `error`; "" means the call completed normally.
ERROR_KINDS = (
    "timeout",  # upstream did not answer (connect, headers or idle body) in time
    "connect_failed",  # could not open a connection to the target
    "reset",  # the upstream closed or reset the connection mid-response
    "bad_response",  # the upstream sent something that is not HTTP
    "bad_request",  # the client sent malformed or smuggling-prone HTTP
    "too_large",  # header or body over the configured limit
    "auth",  # missing, invalid or not-allowed credential (401/403)
    "rate_limited",  # over the route's rate limit (429)
    "no_route",  # no route matched (404)
    "no_healthy_target",  # every target of the upstream is down (503)
    "client_closed",  # the client went away before the response was complete
)


class CallRecord(NamedTuple):
    time: float  # Unix seconds when the request's headers were complete
    route: str  # route name, "" when no route matched
    consumer: str  # consumer name, "" when anonymous
    method: str
    path_template: str  # the route's match pattern, e.g. /orders/{id}
    path: str  # the request path without the query string
    status: int  # status sent to the client
    request_bytes: int  # request body bytes received
    response_bytes: int  # response body bytes sent
    target: str  # "host:port" of the upstream target, "" when none was picked
    gateway_ms: float  # time spent in the gateway itself
    upstream_ms: float  # time from sending to the upstream until its last byte
    total_ms: float  # time from request headers complete to the last byte sent
    error: str  # one of ERROR_KINDS, or ""
    client_ip: str
    request_id: str
    trace_id: str  # W3C trace id (32 hex chars)
    upstream: str = ""  # upstream name
    user_agent: str = ""


class RecordSink(Protocol):
    """Where finished call records go. `emit` is called on the hot path: it must not block.
    `capture` is the call's redacted headers and bodies when its route's capture policy
    kept them (see gateway/capture.py), else None."""

    def emit(self, record: CallRecord, capture: CallCapture | None = None) -> None: ...


@runtime_checkable
class ManagedSink(RecordSink, Protocol):
    """A sink with work of its own (a shipper): started on the worker's loop before the
    first request and closed after the last one, so nothing buffered is lost."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


# --- what a call's outcome was: one classification for every place that counts calls ------

# error kinds that mean "the upstream misbehaved or is down" (as opposed to the client or the
# gateway's own policy): telemetry's `upstream_errors`, detection's rules and the status
# pages all count these, so they are written down once, here
UPSTREAM_ERRORS = frozenset(
    {"timeout", "connect_failed", "reset", "bad_response", "no_healthy_target"}
)


class Outcome(NamedTuple):
    """How one call ended, as every counter of calls sees it.

    `failed` is what an error rate counts: a 5xx sent to the client, or an upstream error
    the client did not see as a 5xx (the upstream reset after the status line went out).
    Client mistakes (4xx) are not failures; 401/403 and 429 are counted apart because auth
    failures and rate limiting have their own rules.
    """

    failed: bool
    server_error: bool  # a 5xx was sent
    client_error: bool  # a 4xx was sent
    auth_failure: bool  # 401 or 403
    rate_limited: bool  # 429
    upstream_error: bool  # the error kind is one of UPSTREAM_ERRORS


@functools.lru_cache(maxsize=4096)
def outcome_of(status: int, error: str) -> Outcome:
    """The `Outcome` of a call answered `status` with error kind `error` (cached: the
    (status, error) pairs seen in practice are few)."""
    server = status >= 500
    client = 400 <= status < 500
    upstream = error in UPSTREAM_ERRORS
    return Outcome(
        failed=server or upstream,
        server_error=server,
        client_error=client,
        auth_failure=status in (401, 403),
        rate_limited=status == 429,
        upstream_error=upstream,
    )


def outcome(record: CallRecord) -> Outcome:
    """How `record`'s call ended (see `Outcome`)."""
    return outcome_of(record.status, record.error)
