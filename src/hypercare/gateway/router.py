"""Route matching: which configured route takes a (method, path).

Precedence is most specific first: exact paths, then parameterised paths (``/orders/{id}``) in
configuration order, then prefixes (``/api/*``) longest first. A path that matches a route whose
methods exclude the request's method yields 405 instead of falling through to a broader route,
so a method restriction can never be bypassed by a catch-all prefix.

Parameterised paths are looked up without scanning them one regex at a time: a parameter never
spans a ``/``, so only patterns with the path's number of slashes can match, and those are
tried together as one compiled alternation (in configuration order, so its first match is the
first route the linear scan would find). Each alternative ends with an empty group that names
it (``m.lastindex``) instead of being wrapped in one, so the alternatives' common start
(``/api/v1/``) is matched once and every alternative after it is rejected at its first
character. Only when the matching route excludes the method does the lookup fall back to
trying the group's later patterns one by one.
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
    found: Match[T] | None = None  # Match(route, template), built once (it is immutable)


def _body(template: str, named: bool) -> str:
    """The regex for `template` without anchors: ``{param}`` becomes ``[^/]+`` (a named group
    when `named`)."""
    return _PARAM.sub(
        r"(?P<\1>[^/]+)" if named else "[^/]+",
        re.escape(template).replace(r"\{", "{").replace(r"\}", "}"),
    )


@dataclass(slots=True)
class _Group(Generic[T]):
    """The `{param}` entries with one number of slashes, in configuration order, and one regex
    trying them all in that order (the empty group ``i + 1`` ends ``entries[i]``)."""

    entries: list[_Entry[T]]
    regex: re.Pattern[str]


@dataclass(slots=True)
class Router(Generic[T]):
    """An immutable-after-build lookup table from (method, path) to a route object."""

    _exact: dict[str, list[_Entry[T]]] = field(default_factory=dict)
    _params: list[_Entry[T]] = field(default_factory=list)
    _prefixes: list[_Entry[T]] = field(default_factory=list)
    _by_slashes: dict[int, _Group[T]] = field(default_factory=dict)

    @classmethod
    def build(cls, routes: Sequence[tuple[str, Sequence[str] | None, T]]) -> Router[T]:
        """`routes` are (path pattern, methods or None for any, route object)."""
        r: Router[T] = cls()
        for order, (template, methods, route) in enumerate(routes):
            ms = frozenset(m.upper() for m in methods) if methods else None
            entry = _Entry(template, ms, route, order=order, found=Match(route, template))
            if template.endswith("/*"):
                entry.prefix = template[:-1]  # keeps the trailing slash
                r._prefixes.append(entry)
            elif "{" in template:
                entry.regex = re.compile("^" + _body(template, True) + "$")
                r._params.append(entry)
            else:
                r._exact.setdefault(template, []).append(entry)
        r._prefixes.sort(key=lambda e: (-len(e.prefix), e.order))
        groups: dict[int, list[_Entry[T]]] = {}
        for e in r._params:
            groups.setdefault(e.template.count("/"), []).append(e)
        for slashes, entries in groups.items():
            # "a()|b()": re factors out the alternatives' common prefix, which it cannot do
            # for "(a)|(b)" (the groups differ)
            alternation = "|".join(f"{_body(e.template, False)}()" for e in entries)
            r._by_slashes[slashes] = _Group(entries, re.compile(f"^(?:{alternation})$"))
        return r

    @staticmethod
    def _later(group: _Group[T], first: int, method: str, path: str) -> _Entry[T] | None:
        """The first entry after ``group.entries[first]`` (whose methods exclude `method`)
        taking (method, path): the linear scan, for that rare case only."""
        for e in group.entries[first + 1 :]:
            if (e.methods is None or method in e.methods) and e.regex and e.regex.match(path):
                return e
        return None

    def match(self, method: str, path: str) -> Match[T]:
        """The route for `method` and `path` (no query string)."""
        path_matched = False
        entries = self._exact.get(path)
        if entries:
            for e in entries:
                if e.methods is None or method in e.methods:
                    return e.found or Match(e.route, e.template)
            path_matched = True
        group = self._by_slashes.get(path.count("/")) if self._by_slashes else None
        if group is not None:
            m = group.regex.match(path)
            if m is not None:
                # the only capturing groups end the alternatives: group i + 1 ends entries[i]
                first = (m.lastindex or 1) - 1
                e = group.entries[first]
                if e.methods is None or method in e.methods:
                    return e.found or Match(e.route, e.template)
                later = self._later(group, first, method, path)
                if later is not None:
                    return later.found or Match(later.route, later.template)
                path_matched = True
        if not path_matched:
            for e in self._prefixes:
                # "/api/*" takes "/api" itself as well as everything under "/api/".
                if path.startswith(e.prefix) or path == e.prefix[:-1]:
                    if e.methods is None or method in e.methods:
                        return e.found or Match(e.route, e.template)
                    path_matched = True
                    break
        return Match(None, "", method_not_allowed=path_matched)
