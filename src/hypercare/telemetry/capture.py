"""Which calls get their headers and bodies captured, and the shape a capture travels in.

A route's policy is one of ``off`` (or ``none``), ``errors`` (status ≥ 400 or a gateway
error kind), ``sample: 5%`` (that fraction of calls, chosen at random) or ``all``. The
gateway worker decides with `should_capture` (it holds the bodies, see
`hypercare.gateway.capture`) and redacts before the capture leaves the worker; the console
checks the policy again and redacts again before anything is stored
(`hypercare.telemetry.redact`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, NamedTuple

from pydantic import BeforeValidator

_SAMPLE = re.compile(r"^\s*sample\s*:\s*(\d+(?:\.\d+)?)\s*%\s*$")


class CallCapture(NamedTuple):
    """Captured headers and bodies of one call, sent beside its `CallRecord`.

    Headers are ``(name, value)`` pairs as received; bodies are the first
    ``max_body_bytes`` of each body (as redacted text when the gateway built the capture);
    `query` is the request's query string; the ``*_truncated`` flags say a body was longer
    than what was kept (its full size is in the call record); `redacted`: a gateway worker
    redacted it already (its bodies are then text that may be longer than the bytes kept).
    """

    request_headers: tuple[tuple[str, str], ...] = ()
    response_headers: tuple[tuple[str, str], ...] = ()
    request_body: bytes = b""
    response_body: bytes = b""
    query: str = ""
    request_truncated: bool = False
    response_truncated: bool = False
    redacted: bool = False


class Policy(NamedTuple):
    mode: Literal["off", "errors", "sample", "all"]
    fraction: float = 0.0

    def __str__(self) -> str:
        if self.mode == "sample":
            return f"sample: {self.fraction * 100:g}%"
        return self.mode


def parse_policy(value: object) -> Policy:
    """``off | none | errors | sample: N% | all`` (YAML ``false`` reads as off)."""
    if isinstance(value, Policy):
        return value
    if value is False or value is None:
        return Policy("off")
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "none":
            return Policy("off")
        if text in ("off", "errors", "all"):
            return Policy(text)  # type: ignore[arg-type]
        m = _SAMPLE.match(text)
        if m:
            pct = float(m.group(1))
            if 0 < pct <= 100:
                return Policy("sample", pct / 100)
            raise ValueError(f"sample percentage must be in (0, 100], got {pct:g}%")
    raise ValueError(f"invalid capture policy {value!r} (use off, errors, 'sample: 5%' or all)")


CapturePolicy = Annotated[Policy, BeforeValidator(parse_policy)]


def should_capture(policy: Policy, status: int, error: str, draw: float) -> bool:
    """Whether to keep headers/bodies of a call; `draw` is a uniform random in [0, 1)."""
    if policy.mode == "all":
        return True
    if policy.mode == "errors":
        return status >= 400 or bool(error)
    if policy.mode == "sample":
        return draw < policy.fraction
    return False
