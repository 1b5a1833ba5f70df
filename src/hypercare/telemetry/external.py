"""External routes: routes Hypercare does not proxy but hears about (OTLP spans, access logs).

The top-level ``external_routes:`` list declares them with the same shapes as gateway routes,
without an upstream::

    external_routes:
      - name: orders.get
        match: {path: /orders/{id}, methods: [GET], host: shop.example.com}
        tags: {component: orders}

`ExternalRoutes.match(host, method, path)` gives ``(route name, path template)``. A call that
matches no declared route goes under the catch-all route `CATCH_ALL`, keeping a normalized path
template (ids, UUIDs, long hex and token-like segments become ``{id}``), so the console can
suggest routes from the most frequent templates (`TemplateCounter`).

Everything here is pure: no I/O, safe to call on a hot path (results of the normalizer are
cached per path).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import Field, field_validator

from hypercare.configtypes import StrictModel
from hypercare.gateway.config import MatchConfig
from hypercare.gateway.router import Router

# the route every call that matches no declared route is counted under (not a valid
# configured route name, so it never collides with one)
CATCH_ALL = "_unmatched"

_HOST = re.compile(r"^(\*\.)?[A-Za-z0-9.\-]+$")
MAX_PATH = 2048
MAX_SEGMENTS = 32
CACHE_SIZE = 4096


class ExternalMatchConfig(MatchConfig):
    """A gateway route's match, plus an optional host (``shop.example.com`` or
    ``*.example.com``; compared without the port, case-insensitively)."""

    host: str | None = None

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _HOST.match(value) or len(value) > 253:
            raise ValueError(
                f"invalid host {value!r} (use a host name such as api.example.com "
                "or *.example.com, without port or scheme)"
            )
        return value.lower()


class ExternalRouteConfig(StrictModel):
    """One route Hypercare does not proxy: ``name``, ``match`` and ``tags`` as gateway
    routes have them (``tags.component`` names its component)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=200)
    match: ExternalMatchConfig
    tags: dict[str, str] = Field(default_factory=dict)

    @property
    def upstream(self) -> str:
        """External routes have no upstream (kept so code over routes can read it)."""
        return ""


def check_names(external: Sequence[ExternalRouteConfig], gateway_names: Iterable[str]) -> None:
    """Raise ValueError when an external route's name is used twice or by a gateway route."""
    taken = set(gateway_names)
    seen: set[str] = set()
    for r in external:
        if r.name in seen:
            raise ValueError(f"external_routes: route name {r.name!r} is used twice")
        if r.name in taken:
            raise ValueError(
                f"external_routes: route name {r.name!r} is already a gateway route; "
                "give the external route another name"
            )
        seen.add(r.name)


# --- path templates for calls that match nothing -----------------------------------------

_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_HEX = re.compile(r"^[0-9a-fA-F]{12,}$")
_NUMBER = re.compile(r"^[+-]?\d+([.,]\d+)?$")
_DIGIT = re.compile(r"\d")


def _is_id(segment: str) -> bool:
    if _NUMBER.match(segment) or _UUID.match(segment):
        return True
    if _HEX.match(segment) and _DIGIT.search(segment):
        return True
    # long tokens with digits in them (base64 ids, ULIDs, slugs with a number), emails
    if len(segment) >= 16 and _DIGIT.search(segment):
        return True
    return "@" in segment


@functools.lru_cache(maxsize=8192)
def normalize_path(path: str) -> str:
    """A path template for `path`: segments that look like ids become ``{id}``.

    >>> normalize_path("/orders/1234/items/9f1c2e3a-0b1c-4d5e-8f90-1a2b3c4d5e6f")
    '/orders/{id}/items/{id}'
    """
    path = path.split("?", 1)[0].split("#", 1)[0][:MAX_PATH] or "/"
    if not path.startswith("/"):
        path = "/" + path
    parts = path.split("/")
    if len(parts) > MAX_SEGMENTS + 1:
        parts = [*parts[:MAX_SEGMENTS], "*"]
    return "/".join("{id}" if p and _is_id(p) else p for p in parts)


# --- the matcher -------------------------------------------------------------------------


# what a route lookup answers: (route name, path template); the routers hold these as their
# route objects, built once, so a lookup allocates nothing
Answer = tuple[str, str]


@dataclass(frozen=True, slots=True)
class _HostRoutes:
    host: str  # exact host, or ".example.com" for "*.example.com"
    wildcard: bool
    router: Router[Answer]


def _host_of(host: str) -> str:
    """`host` without port, lowercased (an IPv6 literal keeps its brackets stripped)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host


class ExternalRoutes:
    """Which declared external route a call belongs to.

    Precedence: routes declaring the call's exact host, then those declaring a matching
    ``*.`` wildcard host (longest first), then routes without a host; within each group the
    gateway router's order (exact paths, then ``{param}`` paths, then ``/prefix/*``).
    """

    def __init__(self, routes: Sequence[ExternalRouteConfig]) -> None:
        by_host: dict[str | None, list[tuple[str, list[str] | None, Answer]]] = {}
        for r in routes:
            by_host.setdefault(r.match.host, []).append(
                (r.match.path, r.match.methods, (r.name, r.match.path))
            )
        self._exact: dict[str, Router[Answer]] = {}
        wild: list[_HostRoutes] = []
        for host, entries in by_host.items():
            if host is None:
                continue
            if host.startswith("*."):
                wild.append(_HostRoutes(host[1:], True, Router.build(entries)))
            else:
                self._exact[host] = Router.build(entries)
        self._wild = sorted(wild, key=lambda h: -len(h.host))
        self._any: Router[Answer] = Router.build(by_host.get(None, []))
        self._only_any = (self._any,)  # the routers to try when no route names a host
        self._hosts = bool(self._exact or self._wild)  # does any route name a host?
        self.names = tuple(r.name for r in routes)
        self._cache: dict[tuple[str, str, str], Answer] = {}
        self._by_host: dict[str, tuple[Router[Answer], ...]] = {}  # `_routers`, remembered
        self.components = {r.name: r.tags.get("component", "") for r in routes}

    @classmethod
    def from_config(cls, routes: Sequence[ExternalRouteConfig]) -> ExternalRoutes:
        return cls(routes)

    def __bool__(self) -> bool:
        return bool(self.names)

    def _routers(self, host: str) -> tuple[Router[Answer], ...]:
        """The routers to try for `host`, in precedence order (remembered per host string,
        bounded: forgets everything at `CACHE_SIZE`)."""
        found = self._by_host.get(host)
        if found is None:
            if len(self._by_host) >= CACHE_SIZE:
                self._by_host.clear()
            found = self._by_host[host] = tuple(self._routers_uncached(host))
        return found

    def _routers_uncached(self, host: str) -> list[Router[Answer]]:
        out: list[Router[Answer]] = []
        if host and (self._exact or self._wild):
            h = _host_of(host)
            exact = self._exact.get(h)
            if exact is not None:
                out.append(exact)
            out.extend(w.router for w in self._wild if h.endswith(w.host))
        out.append(self._any)
        return out

    def match(self, host: str, method: str, path: str) -> Answer:
        """``(route name, path template)`` for a call; `CATCH_ALL` and the normalized path
        when no declared route takes it. `path` may carry a query string (it is ignored);
        `host` may be "" (only host-less routes then match) and may carry a port."""
        if "?" in path:
            path = path.split("?", 1)[0]
        if len(path) > MAX_PATH:
            path = path[:MAX_PATH]
        method = method.upper()
        for router in self._routers(host) if self._hosts else self._only_any:
            found = router.match(method, path or "/").route
            if found is not None:
                return found
        return CATCH_ALL, normalize_path(path or "/")

    def match_cached(self, host: str, method: str, path: str) -> Answer:
        """`match`, remembered: for inputs with few distinct values (an OTLP span's
        ``http.route``, a log's route name). Bounded: forgets everything at `CACHE_SIZE`."""
        key = (host, method, path)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            found = self._cache[key] = self.match(host, method, path)
        return found


# --- suggestions from what went under the catch-all -----------------------------------------


@dataclass(frozen=True, slots=True)
class Suggestion:
    method: str
    path_template: str
    calls: int


class TemplateCounter:
    """Counts calls that went under `CATCH_ALL` by (method, template), bounded: once
    `capacity` distinct templates are kept, the least frequent half is dropped."""

    def __init__(self, capacity: int = 5000) -> None:
        self.capacity = capacity
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, method: str, template: str) -> None:
        self.counts[(method, template)] += 1
        if len(self.counts) > self.capacity:
            keep = self.counts.most_common(self.capacity // 2)
            self.counts = Counter(dict(keep))

    def suggestions(self, limit: int = 20) -> list[Suggestion]:
        """The most frequent templates, most calls first (ties by template)."""
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0][1], kv[0][0]))
        return [Suggestion(m, t, n) for (m, t), n in ranked[:limit]]


def suggested_config(s: Suggestion) -> dict[str, object]:
    """The ``external_routes:`` item a suggestion would become (a name derived from it)."""
    words = [p for p in s.path_template.strip("/").split("/") if p and not p.startswith("{")]
    name = ".".join([*(re.sub(r"[^A-Za-z0-9_\-]", "-", w) for w in words[:3]), s.method.lower()])
    return {
        "name": name or f"root.{s.method.lower()}",
        "match": {"path": s.path_template, "methods": [s.method]},
        "tags": {},
    }


__all__ = [
    "CATCH_ALL",
    "Answer",
    "ExternalMatchConfig",
    "ExternalRouteConfig",
    "ExternalRoutes",
    "Suggestion",
    "TemplateCounter",
    "check_names",
    "normalize_path",
    "suggested_config",
]
