"""Route matching: which configured route takes a (method, path).

Precedence is most specific first: exact paths, then parameterised paths (``/orders/{id}``) in
configuration order, then prefixes (``/api/*``) longest first. A path that matches a route whose
methods exclude the request's method yields 405 instead of falling through to a broader route,
so a method restriction can never be bypassed by a catch-all prefix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Match(Generic[T]):
    """The outcome of a lookup: a route, or the reason none applies."""

    route: T | None
    template: str = ""
    method_not_allowed: bool = False


@dataclass(slots=True)
class _Entry(Generic[T]):
    template: str
    methods: frozenset[str] | None
    route: T
    regex: re.Pattern[str] | None = None
    prefix: str = ""
    order: int = 0


@dataclass(slots=True)
class Router(Generic[T]):
    """An immutable-after-build lookup table from (method, path) to a route object."""

    _exact: dict[str, list[_Entry[T]]] = field(default_factory=dict)
    _params: list[_Entry[T]] = field(default_factory=list)
    _prefixes: list[_Entry[T]] = field(default_factory=list)

    @classmethod
    def build(cls, routes: Sequence[tuple[str, Sequence[str] | None, T]]) -> Router[T]:
        """`routes` are (path pattern, methods or None for any, route object)."""
        r: Router[T] = cls()
        for order, (template, methods, route) in enumerate(routes):
            ms = frozenset(m.upper() for m in methods) if methods else None
            entry = _Entry(template, ms, route, order=order)
            if template.endswith("/*"):
                entry.prefix = template[:-1]  # keeps the trailing slash
                r._prefixes.append(entry)
            elif "{" in template:
                pattern = (
                    "^"
                    + _PARAM.sub(
                        r"(?P<\1>[^/]+)",
                        re.escape(template).replace(r"\{", "{").replace(r"\}", "}"),
                    )
                    + "$"
                )
                entry.regex = re.compile(pattern)
                r._params.append(entry)
            else:
                r._exact.setdefault(template, []).append(entry)
        r._prefixes.sort(key=lambda e: (-len(e.prefix), e.order))
        return r

    def match(self, method: str, path: str) -> Match[T]:
        """The route for `method` and `path` (no query string)."""
        path_matched = False
        entries = self._exact.get(path)
        if entries:
            for e in entries:
                if e.methods is None or method in e.methods:
                    return Match(e.route, e.template)
            path_matched = True
        for e in self._params:
            if e.regex is not None and e.regex.match(path):
                if e.methods is None or method in e.methods:
                    return Match(e.route, e.template)
                path_matched = True
        if not path_matched:
            for e in self._prefixes:
                # "/api/*" takes "/api" itself as well as everything under "/api/".
                if path.startswith(e.prefix) or path == e.prefix[:-1]:
                    if e.methods is None or method in e.methods:
                        return Match(e.route, e.template)
                    path_matched = True
                    break
        return Match(None, "", method_not_allowed=path_matched)
