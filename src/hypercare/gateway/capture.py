"""Call capture in the gateway worker: the first bytes of each body, copied as they stream
through, and the redacted `CallCapture` handed to the record sink with the call record.

`Capturer` is built once per worker from ``telemetry.capture`` and ``telemetry.redact``
(None when every policy is ``off``: the request path then only tests one attribute per
request and per body chunk). For a request whose route may be captured, `begin` returns a
`Tap`; the exchange feeds it each body chunk as it passes (`Tap.request` / `Tap.response`
keep at most ``max_body_bytes`` of each, nothing is held back from the stream), and at the
end `Capturer.finish` applies the policy (``errors`` needs the final status) and redacts.

Nothing unredacted leaves the worker: the shipper's buffer, its spool files and the batch
on the wire only ever hold the redacted capture. The console redacts again before storing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from hypercare.telemetry.capture import CallCapture, Policy, should_capture
from hypercare.telemetry.config import TelemetryConfig
from hypercare.telemetry.redact import REDACTED, Redactor

if TYPE_CHECKING:
    from hypercare.gateway.exchange import Exchange

_JSON = (b"content-type", b"application/json")


class Tap:
    """The captured start of one call's bodies and its response headers, under `policy`."""

    __slots__ = ("limit", "policy", "request_body", "response_body", "response_headers")

    def __init__(self, policy: Policy, limit: int) -> None:
        self.policy = policy
        self.limit = limit
        self.request_body = bytearray()
        self.response_body = bytearray()
        self.response_headers: list[tuple[bytes, bytes]] = []

    def request(self, data: bytes) -> None:
        room = self.limit - len(self.request_body)
        if room > 0:
            self.request_body += data[:room]

    def response(self, data: bytes) -> None:
        room = self.limit - len(self.response_body)
        if room > 0:
            self.response_body += data[:room]

    def reply(self, body: bytes) -> None:
        """The gateway answered itself (an error): that answer is the response."""
        self.response_headers = [_JSON]
        self.response_body = bytearray(body[: self.limit])


class Capturer:
    """The capture policies and redaction rules of one worker."""

    def __init__(
        self,
        default: Policy,
        routes: dict[str, Policy],
        max_body_bytes: int,
        redactor: Redactor,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.default = default
        self.routes = routes
        self.limit = max_body_bytes
        self.redactor = redactor
        self.draw = draw  # uniform in [0, 1): the `sample` policy's coin

    @classmethod
    def from_config(cls, config: TelemetryConfig) -> Capturer | None:
        """None when no route can ever be captured."""
        cap = config.capture
        if cap.default.mode == "off" and all(p.mode == "off" for p in cap.routes.values()):
            return None
        return cls(
            cap.default,
            dict(cap.routes),
            cap.max_body_bytes,
            Redactor(config.redact.headers, config.redact.fields),
        )

    def begin(self, route: str) -> Tap | None:
        """A tap for a request on `route` ("" when none matched), or None when this call
        will not be captured (``sample`` draws here, so unsampled calls copy nothing)."""
        policy = self.routes.get(route, self.default)
        mode = policy.mode
        if mode == "off" or (mode == "sample" and self.draw() >= policy.fraction):
            return None
        return Tap(policy, self.limit)

    def finish(self, tap: Tap, ex: Exchange) -> CallCapture | None:
        """The redacted capture of a finished exchange, or None when its policy (``errors``
        and a successful call) does not keep it."""
        if not should_capture(tap.policy, ex.status, ex.error, 0.0):
            return None
        url = ex.url
        q = url.find(b"?")
        query = url[q + 1 :].decode("latin-1") if q >= 0 else ""
        return redacted_capture(
            self.redactor,
            request_headers(ex),
            [(n.decode("latin-1"), v.decode("latin-1")) for n, v in tap.response_headers],
            bytes(tap.request_body),
            bytes(tap.response_body),
            query=query,
            request_total=ex.request_bytes,
            response_total=ex.response_bytes,
        )


def request_headers(ex: Exchange) -> list[tuple[str, str]]:
    """The request's headers as the client sent them, as far as the exchange kept them:
    the forwarded ones plus those the gateway consumed (Host, framing, ids, API key)."""
    out = [("Host", (ex.host or b"").decode("latin-1"))]
    out += [(n.decode("latin-1"), v.decode("latin-1")) for n, v in ex.headers]
    if ex.content_length is not None:
        out.append(("Content-Length", str(ex.content_length)))
    if ex.chunked:
        out.append(("Transfer-Encoding", "chunked"))
    if ex.xrid is not None:
        out.append(("X-Request-Id", ex.xrid.decode("latin-1")))
    if ex.key_header is not None:
        out.append(("X-API-Key", REDACTED))  # the credential itself: never copied
    return out


def redacted_capture(
    redactor: Redactor,
    req_headers: list[tuple[str, str]],
    resp_headers: list[tuple[str, str]],
    request_body: bytes,
    response_body: bytes,
    *,
    query: str,
    request_total: int,
    response_total: int,
) -> CallCapture:
    """A capture with every secret replaced by the marker (pure: testable alone)."""
    req = (
        redactor.redact_body(
            request_body, _content_type(req_headers), truncated=request_total > len(request_body)
        )
        if request_body
        else None
    )
    resp = (
        redactor.redact_body(
            response_body,
            _content_type(resp_headers),
            truncated=response_total > len(response_body),
        )
        if response_body
        else None
    )
    return CallCapture(
        redactor.redact_header_pairs(req_headers),
        redactor.redact_header_pairs(resp_headers),
        (req or "").encode("utf-8", "replace"),
        (resp or "").encode("utf-8", "replace"),
        query=redactor.redact_query(query) if query else "",
        request_truncated=request_total > len(request_body),
        response_truncated=response_total > len(response_body),
        redacted=True,
    )


def _content_type(headers: list[tuple[str, str]]) -> str:
    return next((v for n, v in headers if n.lower() == "content-type"), "")
