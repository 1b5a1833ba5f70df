"""What an adapter produces: signal drafts, or a rejection that says what is wrong."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Kind = Literal["user", "system", "team"]
SignalStatus = Literal["firing", "resolved"]


class Rejected(Exception):
    """The payload cannot be turned into signals; `reason` tells the sender how to fix it."""

    def __init__(self, reason: str, *, status: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class SignalDraft:
    """One normalised piece of feedback before it is stored."""

    kind: Kind
    source: str
    summary: str
    dedup_key: str
    raw: Any
    body: str = ""
    severity: str | None = None
    status: SignalStatus | None = None
    occurred_at: datetime | None = None
    component: str | None = None
    service: str | None = None
    route: str | None = None
    consumer: str | None = None
    request_ids: tuple[str, ...] = ()
    trace_id: str | None = None
    user_ref: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    score: int | None = None
    issue_id: int | None = None
    create_issue: bool = True


def parse_json(body: bytes) -> Any:
    """The body as JSON, or a rejection naming the position of the syntax error."""
    if not body.strip():
        raise Rejected("empty body: send the JSON payload")
    try:
        return json.loads(body, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise Rejected("the body is not UTF-8 text; send JSON") from None
    except json.JSONDecodeError as exc:
        raise Rejected(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _no_constants(name: str) -> Any:
    raise Rejected(f"the body holds {name}, which is not valid JSON; send numbers or null")


def need_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Rejected(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def text(value: Any, limit: int = 10_000) -> str:
    """A bounded string from whatever the payload holds there ('' for null)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)[:limit]
    return str(value)[:limit]


def opt_text(value: Any, limit: int = 200) -> str | None:
    out = text(value, limit)
    return out or None


def str_labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k)[:100]: text(v, 500) for k, v in list(value.items())[:100]}


_ZERO_TIME = "0001-01-01"


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 (with Z, offsets such as +0000, or nanoseconds) or epoch seconds/ms."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or value.startswith(_ZERO_TIME):
        return None
    if value.isdigit():
        return parse_time(int(value))
    s = value.strip().replace("Z", "+00:00")
    # Python wants at most 6 fractional digits and a colon in the offset
    if "." in s:
        head, _, rest = s.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tail = rest[len(digits) :]
        s = f"{head}.{digits[:6]}{tail}"
    if len(s) > 5 and s[-5] in "+-" and s[-4:].isdigit():
        s = f"{s[:-2]}:{s[-2:]}"
    try:
        parsed = datetime.fromisoformat(s)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
