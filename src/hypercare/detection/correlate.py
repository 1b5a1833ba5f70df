"""Explainable correlation: how strongly a signal belongs to an open issue, and why.

Pure scoring over plain features. Evidence adds up; each piece leaves a human reason
("same route payment-status", "ticket cites request id 4bf9…", "3 min apart"). Time
proximity only strengthens other evidence: two unrelated routes failing at the same moment
stay separate issues unless they share something concrete.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

ATTACH_THRESHOLD = 0.5

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "at",
        "be",
        "been",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "i",
        "in",
        "is",
        "it",
        "its",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "them",
        "there",
        "this",
        "to",
        "was",
        "were",
        "when",
        "with",
        "you",
        "your",
        "we",
        "not",
        "no",
        "can",
        "cant",
        "dont",
        "doesnt",
        "after",
        "before",
        "since",
        "just",
        "very",
        "still",
        "again",
        "api",
        "v1",
        "v2",
        "please",
        "help",
    ]
)


def stem(word: str) -> str:
    """A deliberately light stemmer: enough to match "payments"/"payment", "delayed"/"delay"."""
    if len(word) <= 4:
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    if word.endswith("ing") and len(word) >= 6:
        return word[:-3]
    if word.endswith("ed") and len(word) >= 5:
        return word[:-2]
    return word


@functools.lru_cache(maxsize=4096)
def tokens(text: str) -> frozenset[str]:
    return frozenset(stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP)


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """What the gateway knows about a route, used to read free text."""

    name: str
    path: str = ""
    component: str | None = None
    description: str = ""

    def words(self) -> frozenset[str]:
        path_words = " ".join(p for p in self.path.split("/") if not p.startswith("{"))
        return tokens(f"{self.name.replace('-', ' ')} {path_words}")


def text_similarity(text: str, route: RouteInfo) -> float:
    """Share of the route's own words that the text mentions (0..1)."""
    route_words = route.words()
    if not route_words:
        return 0.0
    return len(tokens(text) & route_words) / len(route_words)


def infer_route(
    text: str, routes: Iterable[RouteInfo], minimum: float = 0.6
) -> tuple[RouteInfo, float] | None:
    """The route free text most likely talks about, if any is clearly mentioned."""
    best: tuple[RouteInfo, float] | None = None
    for route in routes:
        sim = text_similarity(text, route)
        if sim >= minimum and (
            best is None
            or sim > best[1]
            or (sim == best[1] and len(route.words()) > len(best[0].words()))
        ):
            best = (route, sim)
    return best


def route_for_path(url_path: str, routes: Iterable[RouteInfo]) -> RouteInfo | None:
    """The route whose path pattern matches a URL path cited in feedback."""
    path = url_path.split("?", 1)[0].rstrip("/") or "/"
    best: RouteInfo | None = None
    for route in routes:
        pattern = route.path.rstrip("/") or "/"
        if pattern.endswith("/*"):
            ok = path == pattern[:-2] or path.startswith(pattern[:-1])
        else:
            regex = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(pattern)) + "$"
            ok = re.match(regex, path) is not None
        if ok and (best is None or len(pattern) > len(best.path)):
            best = route
    return best


@dataclass(frozen=True, slots=True)
class SignalFeatures:
    signal_id: int
    kind: str  # user | system | team
    source: str
    occurred_at: float  # Unix seconds
    dedup_key: str | None = None
    route: str | None = None  # stated by the source (gateway rule, alert label)
    component: str | None = None
    text: str = ""
    cited_routes: dict[str, str] = field(default_factory=dict)  # request/trace id → route


@dataclass(frozen=True, slots=True)
class IssueFeatures:
    issue_id: int
    dedup_keys: frozenset[str]
    routes: frozenset[str]
    components: frozenset[str]
    first_seen: float
    last_seen: float
    excluded_signals: frozenset[int] = frozenset()  # split off by a person: never re-attach


@dataclass(frozen=True, slots=True)
class Link:
    issue_id: int
    score: float
    reasons: tuple[str, ...]


def resolve_route(
    signal: SignalFeatures, routes: Sequence[RouteInfo]
) -> tuple[str | None, str | None]:
    """The route a signal is about and why: stated, cited through a call, or read from text."""
    if signal.route:
        return signal.route, f"route {signal.route}"
    if signal.cited_routes:
        ident, route = next(iter(signal.cited_routes.items()))
        return route, f"cites request id {ident[:12]} of a call on route {route}"
    inferred = infer_route(signal.text, routes) if signal.text else None
    if inferred:
        route_info, sim = inferred
        return route_info.name, f"text mentions {route_info.name} ({sim:.0%} of its words)"
    return None, None


def score(
    signal: SignalFeatures,
    issue: IssueFeatures,
    *,
    route: str | None,
    route_reason: str | None,
    component: str | None,
) -> Link:
    """How strongly `signal` belongs to `issue`, with the reasons."""
    if signal.signal_id in issue.excluded_signals:
        return Link(issue.issue_id, 0.0, ("split off by a person",))
    reasons: list[str] = []
    total = 0.0
    if signal.dedup_key and signal.dedup_key in issue.dedup_keys:
        total += 1.0
        reasons.append("same dedup key")
    shared_route = route is not None and route in issue.routes
    if shared_route:
        total += 0.6
        why = route_reason or f"route {route}"
        reasons.append(f"same {why}" if why.startswith("route ") else why)
    if component and component in issue.components:
        total += 0.3 if shared_route else 0.45
        reasons.append(f"same component {component}")
    if route is not None and issue.routes and not shared_route and total < 1.0:
        # a different, known route: only an exact dedup key may overrule that
        return Link(issue.issue_id, 0.0, (f"different route {route}",))
    if total == 0.0:
        return Link(issue.issue_id, 0.0, ())
    gap = min(abs(signal.occurred_at - issue.last_seen), abs(signal.occurred_at - issue.first_seen))
    if gap <= 900:
        total += 0.15
        reasons.append(f"{_ago(gap)} apart")
    elif gap > 6 * 3600:
        total *= 0.5
        reasons.append(f"{_ago(gap)} apart (weaker)")
    return Link(issue.issue_id, round(min(total, 1.0), 3), tuple(reasons))


def best_link(
    signal: SignalFeatures,
    issues: Iterable[IssueFeatures],
    routes: Sequence[RouteInfo],
    route_components: dict[str, str] | None = None,
    threshold: float = ATTACH_THRESHOLD,
) -> tuple[Link | None, str | None]:
    """The open issue this signal should join (None: open a new one), and the route it is about."""
    route, why = resolve_route(signal, routes)
    component = signal.component or (route_components or {}).get(route or "")
    best: Link | None = None
    for issue in issues:
        link = score(signal, issue, route=route, route_reason=why, component=component)
        if link.score >= threshold and (best is None or link.score > best.score):
            best = link
    return best, route


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
