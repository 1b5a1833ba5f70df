"""What every access-log adapter shares: the route matcher it is given, the error for a line
it cannot read, small field readers, and the per-source count of lines that did not match.

An adapter is a pure function ``parse(doc, match) -> CallRecord`` over one decoded log
entry (a JSON object). It raises `Unparsable` with a short reason when the entry is not in
its format; the caller counts it per source (`Rejects`) with a sample of the line, so
nothing is dropped silently. `match(host, method, path)` gives the ``(route, path
template)`` the call belongs to: the console's ``external_routes:`` matcher
(`hypercare.telemetry.external.ExternalRoutes.match`), or `unrouted` without one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from hypercare.gateway.records import CallRecord

Match = Callable[[str, str, str], tuple[str, str]]

# what a sample of an offending line keeps (enough to see what is wrong, bounded)
SAMPLE_CHARS = 512
MAX_SOURCES = 256


class Unparsable(ValueError):
    """The entry is not in the adapter's format; the message says what is missing."""


def unrouted(host: str, method: str, path: str) -> tuple[str, str]:
    """The match without declared routes: no route, the path as its own template."""
    return "", path.split("?", 1)[0] or "/"


class RouteMemo:
    """`match` remembering its answers per (host, method, path) for as long as that pays.

    Access logs repeat paths (health checks, list pages), and a route lookup costs a regex
    match or more, so remembering the last `most` answers (then starting over) saves most
    lookups; but on a stream of mostly distinct paths every lookup misses, and remembering
    only adds its own cost. So it is decided per batch of lines: `for_batch()` gives the
    remembering matcher, and once it has answered `judge` lookups with fewer than `min_hits`
    of them remembered, `match` itself for the next `pause` lookups, after which remembering
    is tried again (from empty). `match` must be pure.

        memo = RouteMemo(routes.match)
        records = parse_lines(lines, adapter, memo.for_batch(), rejects, source)
        memo.after_batch(len(records))
    """

    def __init__(
        self,
        match: Match,
        most: int = 8192,
        *,
        min_hits: float = 1 / 3,
        judge: int = 4096,
        pause: int = 65536,
    ) -> None:
        self.match = match
        self.most = most
        self.min_hits = min_hits
        self.judge = judge
        self.pause = pause
        self.seen: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._hits = [0]  # lookups remembered since the last judgement (the lookup counts)
        self._lookups = 0  # lookups since the last judgement
        self._paused = 0  # lookups left to make without remembering
        self.lookup = self._remembering()

    def _remembering(self) -> Match:
        match, seen, hits, most = self.match, self.seen, self._hits, self.most

        def lookup(host: str, method: str, path: str) -> tuple[str, str]:
            key = (host, method, path)
            found = seen.get(key)
            if found is None:
                if len(seen) >= most:
                    seen.clear()
                found = seen[key] = match(host, method, path)
            else:
                hits[0] += 1
            return found

        return lookup

    @property
    def remembering(self) -> bool:
        return self._paused <= 0

    def for_batch(self) -> Match:
        """The matcher for the next batch: `lookup` (remembering), or `match` while paused."""
        return self.lookup if self._paused <= 0 else self.match

    def after_batch(self, lookups: int) -> None:
        """Account for a batch of (about) `lookups` lookups made with `for_batch()`'s
        matcher: judge remembering once it has made `judge` of them."""
        if self._paused > 0:
            self._paused -= lookups
            return
        self._lookups += lookups
        if self._lookups < self.judge:
            return
        if self._hits[0] < self._lookups * self.min_hits:
            self._paused = self.pause
            self.seen.clear()
        self._lookups = self._hits[0] = 0


class Adapter(NamedTuple):
    name: str  # the --format / URL name, e.g. "nginx-json"
    title: str  # "nginx (JSON log_format)"
    parse: Callable[[Any, Match], CallRecord]
    tail: bool  # written to a file (hypercare tail); else pushed over HTTP
    # optional fast path over a raw line: a record, or None to let `parse` read it
    parse_line: Callable[[bytes, Match], CallRecord | None] | None = None


# --- field readers -------------------------------------------------------------------------

_EMPTY = (None, "", "-")


def text(doc: dict[str, Any], key: str, default: str = "") -> str:
    """A string field; None, "" and "-" (how proxies write "no value") give `default`."""
    v = doc.get(key)
    if v in _EMPTY:
        return default
    return v if isinstance(v, str) else str(v)


def obj(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """`doc[key]` when it is an object, else an empty one."""
    v = doc.get(key)
    return v if isinstance(v, dict) else {}


def request_head(doc: Any) -> tuple[dict[str, Any], dict[str, Any], str, str, int]:
    """The part Kong's and APISIX's loggers share: the entry's ``request`` and ``response``
    objects, the method, the URI and the answer's status."""
    if not isinstance(doc, dict):
        raise Unparsable("not a JSON object")
    request, response = obj(doc, "request"), obj(doc, "response")
    if not request or not response:
        raise Unparsable('no "request" or "response" object')
    method = text(request, "method")
    uri = text(request, "uri")
    if not method or not uri:
        raise Unparsable('no "request.method" or "request.uri"')
    return request, response, method, uri, status(need(response, "status"), "response.status")


def need(doc: dict[str, Any], key: str) -> Any:
    v = doc.get(key)
    if v in _EMPTY:
        raise Unparsable(f'no "{key}"')
    return v


def number(value: Any, what: str) -> float:
    """A number written as a number or as a string ("0.105", "200"); empty counts as 0."""
    if value in _EMPTY:
        return 0.0
    if isinstance(value, bool):
        raise Unparsable(f'"{what}" is not a number')
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise Unparsable(f'"{what}" is not a number: {value[:40]!r}') from None
    raise Unparsable(f'"{what}" is not a number')


def status(value: Any, what: str) -> int:
    s = number(value, what)
    if not 100 <= s < 600 and s != 0:
        raise Unparsable(f'"{what}" {value!r} is not an HTTP status')
    return int(s)


def iso_time(value: Any, what: str) -> float:
    """Unix seconds of an RFC 3339 time (nanosecond fractions and "Z" accepted)."""
    if not isinstance(value, str) or len(value) < 19:
        raise Unparsable(f'"{what}" is not a time')
    v = value
    if v.endswith(("Z", "z")):
        v = v[:-1] + "+00:00"
    dot = v.find(".", 19)
    if dot != -1:  # Python reads at most 6 fractional digits
        end = dot + 1
        while end < len(v) and v[end].isdigit():
            end += 1
        v = v[: dot + 1] + v[dot + 1 : end][:6].ljust(6, "0") + v[end:]
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        raise Unparsable(f'"{what}" is not a time: {value[:40]!r}') from None
    if t.tzinfo is None:
        raise Unparsable(f'"{what}" has no time zone: {value[:40]!r}')
    return t.timestamp()


def trace_of(traceparent: str) -> str:
    """The trace id of a W3C ``traceparent`` header value, or ""."""
    # the usual "vv-<32 hex>-<16 hex>-ff", without splitting it into a list
    tp = traceparent
    if len(tp) == 55 and tp[2] == tp[35] == "-" and tp.count("-") == 3:
        return tp[3:35].lower()
    parts = traceparent.split("-")
    if len(parts) >= 4 and len(parts[1]) == 32:
        return parts[1].lower()
    return ""


def last_of(value: str) -> str:
    """The last of nginx's ", " / " : " separated values (one per upstream tried)."""
    if "," in value or " : " in value:
        value = value.replace(" : ", ",").rsplit(",", 1)[-1]
    return value.strip()


def split_target(url_or_addr: str) -> str:
    """host:port of an upstream given as an address or a URL."""
    if "://" in url_or_addr:
        url_or_addr = url_or_addr.split("://", 1)[1].split("/", 1)[0]
    return url_or_addr


def gateway_ms(total: float, upstream: float) -> float:
    return total - upstream if total > upstream else 0.0


def error_for_status(status_: int, upstream_answered: bool) -> str:
    """The error kind a proxy's own 5xx/499 stands for when the upstream did not answer."""
    if status_ == 499:
        return "client_closed"
    if upstream_answered:
        return ""
    if status_ == 504:
        return "timeout"
    if status_ == 502:
        return "connect_failed"
    if status_ == 503:
        return "no_healthy_target"
    return ""


_EARLIEST, _LATEST = 1e9, 4102444800.0  # as the ingest checks: 2001 to 2100


def sane(r: CallRecord) -> CallRecord:
    """`r` when the ingest would take it (a plausible time, finite durations ≥ 0)."""
    if not _EARLIEST < r.time < _LATEST:
        raise Unparsable(f"time {r.time!r} is not a Unix time between 2001 and 2100")
    for v in (r.total_ms, r.upstream_ms, r.gateway_ms):
        if not 0 <= v < 1e12:  # also false for NaN
            raise Unparsable(f"duration {v!r} is not a finite duration ≥ 0")
    return r


# --- counting what did not match ------------------------------------------------------------


@dataclass
class Rejected:
    """Lines of one source that did not match its format: how many, and the last one."""

    total: int = 0
    sample: str = ""
    reason: str = ""
    at: float = 0.0


@dataclass
class Rejects:
    """Per source (``nginx-json:/var/log/nginx/access.log``, ``kong:edge-1``...); bounded."""

    sources: dict[str, Rejected] = field(default_factory=dict)

    def add(self, source: str, line: bytes | str, reason: str, at: float) -> None:
        entry = self.sources.get(source)
        if entry is None:
            if len(self.sources) >= MAX_SOURCES:
                source = "(other sources)"
                entry = self.sources.setdefault(source, Rejected())
            else:
                entry = self.sources[source] = Rejected()
        entry.total += 1
        entry.sample = sample_of(line)
        entry.reason = reason[:200]
        entry.at = at

    def set(self, source: str, total: int, sample: str, reason: str, at: float) -> None:
        """What a remote tailer reported (its own running count)."""
        if source not in self.sources and len(self.sources) >= MAX_SOURCES:
            return
        self.sources[source] = Rejected(total, sample[:SAMPLE_CHARS], reason[:200], at)

    def merge(self, other: Rejects) -> None:
        """Add `other`'s counts (its samples are the newer ones)."""
        for name, r in other.sources.items():
            self.add(name, r.sample, r.reason, r.at)
            self.sources.get(name, self.sources.get("(other sources)", Rejected())).total += (
                r.total - 1
            )

    @property
    def total(self) -> int:
        return sum(r.total for r in self.sources.values())


def sample_of(line: bytes | str) -> str:
    if isinstance(line, bytes):
        line = line[: SAMPLE_CHARS * 4].decode("utf-8", "replace")
    line = line.rstrip("\r\n")
    return line if len(line) <= SAMPLE_CHARS else line[:SAMPLE_CHARS] + "…"
