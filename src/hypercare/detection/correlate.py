"""Explainable correlation: how strongly a signal belongs to an open issue, and why.

Pure scoring over plain features. Evidence adds up; each piece leaves a human reason
("same route payment-status", "ticket cites request id 4bf9…", "3 min apart"). Only
specific evidence links: a dedup key, a cited request/trace id, the same route (stated, or
several of its words in a report), routes of one component or upstream that started failing
together (one cause), or several uncommon words a person wrote. Time proximity only
strengthens such evidence and one common word is none: two unrelated routes failing at the
same moment stay separate issues. Security signals (auth failures) and application errors
never share an issue; a traffic drop joins only an issue of its own route.

`decide(signal, context)` is the whole attach decision over a loaded `Context` (join the dedup
group, link with score and reasons, reopen, open new); `detection/attach.py` loads the context
and applies the decisions.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

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
    upstream: str | None = None

    def words(self) -> frozenset[str]:
        return _route_words(self.name, self.path)


@functools.lru_cache(maxsize=4096)
def _route_words(name: str, path: str) -> frozenset[str]:
    path_words = " ".join(p for p in path.split("/") if not p.startswith("{"))
    return tokens(f"{name.replace('-', ' ')} {path_words}")


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


# --- ids cited in free text -------------------------------------------------------------------

# what the gateway issues (32 hex chars) and what callers commonly send (UUIDs, 16+ hex chars),
# and a W3C traceparent, whose second field is the trace id
_TRACEPARENT = re.compile(r"\b00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}\b")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_HEX = re.compile(r"\b[0-9a-f]{16,64}\b")
MAX_CITED_IDS = 20


def ids_in_text(text: str) -> tuple[str, ...]:
    """Request or trace ids that free text cites (an emailed ticket, an annotation), in order of
    appearance, at most `MAX_CITED_IDS`. A run of hex digits counts only when it holds a digit
    and a letter, so words and numbers in the text are not taken for ids.

    >>> ids_in_text("request 4bf92f3577b34da6a3ce929d0e0e4736 failed at 10:42")
    ('4bf92f3577b34da6a3ce929d0e0e4736',)
    """
    low = text[:20_000].lower()
    found: dict[str, None] = {}
    for m in _TRACEPARENT.finditer(low):
        found[m.group(1)] = None
    for m in _UUID.finditer(low):
        found[m.group(0)] = None
    for m in _HEX.finditer(low):
        word = m.group(0)
        if any(c.isdigit() for c in word) and any(c.isalpha() for c in word):
            found[word] = None
    return tuple(found)[:MAX_CITED_IDS]


# --- what a signal is about ---------------------------------------------------------------------

SECURITY = "security"
TRAFFIC = "traffic"
APPLICATION = "application"
# gateway rules whose signals are not application errors (the detection rules name them)
SECURITY_RULES = frozenset({"auth-failure-spike", "auth-failures"})
TRAFFIC_RULES = frozenset({"traffic-drop"})


def category(kind: str, labels: dict[str, str] | None) -> str:
    """What a signal is evidence of: an attack or abuse (``security``), a loss of traffic
    (``traffic``: the cause is usually outside the product), or an application error.

    Security signals are told apart by their kind, a ``category: security`` label or the rule
    that raised them; they never join an application-error issue, nor the reverse."""
    labels = labels or {}
    if kind == SECURITY or labels.get("category") == SECURITY:
        return SECURITY
    rule = labels.get("rule", "")
    if rule in SECURITY_RULES:
        return SECURITY
    if rule in TRAFFIC_RULES:
        return TRAFFIC
    return APPLICATION


@dataclass(frozen=True, slots=True)
class SignalFeatures:
    signal_id: int
    kind: str  # user | system | team | security
    source: str
    occurred_at: float  # Unix seconds
    dedup_key: str | None = None
    route: str | None = None  # stated by the source (gateway rule, alert label)
    component: str | None = None
    text: str = ""
    cited_routes: dict[str, str] = field(default_factory=dict)  # request/trace id → route
    category: str = APPLICATION
    status: str = "firing"
    issue_id: int | None = None  # set by the sender: join exactly this issue
    create: bool = True  # may open an issue (False: only join what exists)


@dataclass(frozen=True, slots=True)
class IssueFeatures:
    issue_id: int
    dedup_keys: frozenset[str]
    routes: frozenset[str]
    components: frozenset[str]
    first_seen: float
    last_seen: float
    excluded_signals: frozenset[int] = frozenset()  # split off by a person: never re-attach
    upstreams: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset({APPLICATION})
    excluded_keys: frozenset[str] = frozenset()  # dedup keys people took off this issue
    words: frozenset[str] = frozenset()  # the title's words


@dataclass(frozen=True, slots=True)
class Link:
    issue_id: int
    score: float
    reasons: tuple[str, ...]
    # specific evidence of a shared cause (dedup key, cited call, stated route, component or
    # upstream failing together): only such a link may raise the issue's priority
    strong: bool = False


def resolve_route(
    signal: SignalFeatures, routes: Sequence[RouteInfo]
) -> tuple[str | None, str | None]:
    """The route a signal is about and why: stated, cited through a call, or read from text."""
    found = _resolve(signal, routes)
    return found[0], found[1]


_Resolved = tuple[str | None, str | None, str]


def _resolve(
    signal: SignalFeatures,
    routes: Sequence[RouteInfo],
    infer: Callable[[str], tuple[RouteInfo, float] | None] | None = None,
) -> _Resolved:
    """(route, reason, how): how is "stated", "cited" or "text" (several of its words).
    `infer`: `infer_route` over `routes` (`Context.infer`, indexed), when given."""
    if signal.route:
        return signal.route, f"route {signal.route}", "stated"
    if signal.cited_routes:
        ident, route = next(iter(signal.cited_routes.items()))
        return route, f"cites request id {ident[:12]} of a call on route {route}", "cited"
    inferred = None
    if signal.text:
        inferred = infer(signal.text) if infer is not None else infer_route(signal.text, routes)
    if inferred:
        route_info, sim = inferred
        matched = len(tokens(signal.text) & route_info.words())
        if matched >= 2:
            # one word in common ("users") says nothing specific: no route then
            return (
                route_info.name,
                f"text mentions {route_info.name} ({sim:.0%} of its words)",
                "text",
            )
    return None, None, ""


# how close two failures must start to count as one cause through a shared component/upstream
TOGETHER_SECONDS = 300.0
# words shared with an issue's title: how many uncommon ones make evidence, and what
# uncommon means (in at most this share of the open issues' titles)
MIN_SHARED_WORDS = 3
UNCOMMON_SHARE = 0.01
COMPONENT_ONLY = 0.45  # what the same component alone scores
NEAR = 900.0  # seconds apart for the time bonus


def score(
    signal: SignalFeatures,
    issue: IssueFeatures,
    *,
    route: str | None,
    route_reason: str | None,
    component: str | None,
    how: str = "stated",
    upstream: str | None = None,
    uncommon: Callable[[str], bool] | None = None,
) -> Link:
    """How strongly `signal` belongs to `issue`, with the reasons.

    Only specific evidence links: the same dedup key, a cited call, the same route (stated or
    read from several words of the text), the same component or upstream failing together, or
    several uncommon words shared with the issue's title. Time proximity strengthens such
    evidence and is never enough alone; one word in common is noise."""
    if signal.signal_id in issue.excluded_signals or (
        signal.dedup_key and signal.dedup_key in issue.excluded_keys
    ):
        return Link(issue.issue_id, 0.0, ("split off by a person",))
    if signal.category not in issue.categories:
        return Link(issue.issue_id, 0.0, (f"{signal.category} signal, not {_cats(issue)}",))
    reasons: list[str] = []
    total = 0.0
    strong = False
    if signal.dedup_key and signal.dedup_key in issue.dedup_keys:
        total += 1.0
        strong = True
        reasons.append("same dedup key")
    shared_route = route is not None and route in issue.routes
    gap_start = abs(signal.occurred_at - issue.first_seen)
    together = gap_start <= TOGETHER_SECONDS
    if signal.category == TRAFFIC:
        # no traffic says nothing about a cause: only the same route (or key) is related
        if shared_route and how == "stated":
            total += 0.6
            strong = True
            reasons.append(f"same route {route}")
    elif shared_route:
        if how == "cited":
            total += 0.9
            strong = True
            reasons.append(route_reason or f"route {route}")
        elif how == "stated":
            total += 0.6
            strong = True
            reasons.append(f"same route {route}")
        else:
            # several of the route's own words: specific, though read, not stated
            total += 0.5
            strong = True
            reasons.append(route_reason or f"text mentions {route}")
        if component and component in issue.components:
            total += 0.3
            reasons.append(f"same component {component}")
    elif route is not None and issue.routes and how in ("stated", "cited"):
        # a different route: one cause only when its component (or upstream) is the issue's
        # and both started failing together
        if together and component and component in issue.components:
            total += 0.55
            strong = True
            reasons.append(
                f"route {route} of the same component {component}, started together "
                f"({_ago(gap_start)} apart)"
            )
        elif (
            together
            and upstream
            and upstream in issue.upstreams
            and not (component and issue.components and component not in issue.components)
        ):
            # one upstream behind both, and no different components named: the upstream is
            # the shared cause (routes of different components stay apart)
            total += 0.55
            strong = True
            reasons.append(
                f"route {route} on the same upstream {upstream}, started together "
                f"({_ago(gap_start)} apart)"
            )
        elif total < 1.0:
            return Link(issue.issue_id, 0.0, (f"different route {route}",))
    elif component and component in issue.components and signal.category != TRAFFIC:
        total += COMPONENT_ONLY
        strong = strong or how == "stated" or route is None
        reasons.append(f"same component {component}")
    if signal.kind == "user" and uncommon is not None and issue.words:
        # prose written by people; alerts link by their structured fields, not their wording
        shared = sorted(w for w in tokens(signal.text) & issue.words if uncommon(w))
        if len(shared) >= MIN_SHARED_WORDS:
            total += 0.3 + 0.05 * (len(shared) - MIN_SHARED_WORDS)
            reasons.append("shares uncommon words " + ", ".join(shared[:5]))
    if total == 0.0:
        return Link(issue.issue_id, 0.0, ())
    gap = min(abs(signal.occurred_at - issue.last_seen), gap_start)
    if gap <= NEAR:
        total += 0.15
        reasons.append(f"{_ago(gap)} apart")
    elif gap > 6 * 3600:
        total *= 0.5
        reasons.append(f"{_ago(gap)} apart (weaker)")
    return Link(issue.issue_id, round(min(total, 1.0), 3), tuple(reasons), strong)


def best_link(
    signal: SignalFeatures,
    issues: Iterable[IssueFeatures],
    routes: Sequence[RouteInfo],
    route_components: dict[str, str] | None = None,
    threshold: float = ATTACH_THRESHOLD,
    *,
    route_upstreams: dict[str, str] | None = None,
    uncommon: Callable[[str], bool] | None = None,
    resolved: _Resolved | None = None,
    ascending: bool = False,
) -> tuple[Link | None, str | None]:
    """The open issue this signal should join (None: open a new one), and the route it is about
    (`resolved`: what `_resolve` found for it, when the caller has it already).

    Ties go to the oldest issue (lowest id), so the outcome never depends on the order the
    issues are given in (or on which of them was updated last). `ascending`: the issues come
    by increasing id, so once one scores the maximum no later one can win and the rest are
    not scored."""
    route, why, how = resolved if resolved is not None else _resolve(signal, routes)
    component = signal.component or (route_components or {}).get(route or "")
    upstream = (route_upstreams or {}).get(route or "")
    # without a route, an alert's only evidence is its component (0.45) and the time bonus
    # (0.15 within 15 minutes): further apart, below the threshold, it is not scored at all
    far_is_below = route is None and signal.kind != "user" and threshold > COMPONENT_ONLY
    occurred = signal.occurred_at
    best: Link | None = None
    for issue in issues:
        if (
            far_is_below
            and min(abs(occurred - issue.last_seen), abs(occurred - issue.first_seen)) > NEAR
            and not (signal.dedup_key and signal.dedup_key in issue.dedup_keys)
        ):
            continue
        link = score(
            signal,
            issue,
            route=route,
            route_reason=why,
            component=component,
            how=how,
            upstream=upstream,
            uncommon=uncommon,
        )
        if link.score < threshold or not _specific(link):
            continue
        if (
            best is None
            or link.score > best.score
            or (link.score == best.score and link.issue_id < best.issue_id)
        ):
            best = link
            if ascending and best.score >= 1.0:
                break
    return best, route


def _specific(link: Link) -> bool:
    return any(not r.endswith(("apart", "apart (weaker)")) for r in link.reasons)


def _cats(issue: IssueFeatures) -> str:
    return " or ".join(sorted(issue.categories)) + " issue"


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --- the decision ------------------------------------------------------------------------------


class Action(StrEnum):
    join_group = "join_group"  # same dedup key as an open group: update it
    link = "link"  # correlated with an open issue: join it with a score and reasons
    open = "open"  # nothing specific matches: open a new issue
    reopen = "reopen"  # the key's issue was resolved by hypercare alone and fires again
    none = "none"  # a resolve for nothing open, or a signal that may not open an issue


@dataclass(frozen=True, slots=True)
class GroupRef:
    """An open dedup group as the decision sees it."""

    issue_id: int
    issue_open: bool
    reopenable: bool = False  # resolved by hypercare (auto-resolve), nobody touched it


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    issue_id: int | None = None
    score: float = 1.0
    reasons: tuple[str, ...] = ()
    route: str | None = None
    route_reason: str | None = None
    component: str | None = None
    reprioritise: bool = False  # may auto-priority raise the issue on this signal's strength


_Key = tuple[str, str]  # ("r" route | "c" component | "u" upstream | "w" title word, value)


def _keys(issue: IssueFeatures) -> Iterable[_Key]:
    for kind, values in (
        ("r", issue.routes),
        ("c", issue.components),
        ("u", issue.upstreams),
        ("w", issue.words),
    ):
        for value in values:
            yield kind, value


@dataclass(eq=False)
class Snapshot:
    """Open issues' features with their index (which issues hold a route, component, upstream
    or title word) and title-word counts, kept up to date issue by issue (`put`, `drop`) by
    the open-issue cache and read by every batch (`Context`), which keeps its own changes
    apart."""

    issues: dict[int, IssueFeatures] = field(default_factory=dict)
    index: dict[_Key, set[int]] = field(default_factory=dict)
    df: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, issues: Iterable[IssueFeatures]) -> Snapshot:
        made = cls()
        for issue in issues:
            made.put(issue)
        return made

    def put(self, issue: IssueFeatures) -> None:
        old = self.issues.get(issue.issue_id)
        if old is issue:
            return
        if old is not None:
            self.drop(old.issue_id)
        self.issues[issue.issue_id] = issue
        for key in _keys(issue):
            self.index.setdefault(key, set()).add(issue.issue_id)
        for w in issue.words:
            self.df[w] = self.df.get(w, 0) + 1

    def drop(self, issue_id: int) -> None:
        old = self.issues.pop(issue_id, None)
        if old is None:
            return
        for key in _keys(old):
            held = self.index.get(key)
            if held is not None:
                held.discard(issue_id)
                if not held:
                    del self.index[key]
        for w in old.words:
            left = self.df.get(w, 0) - 1
            if left > 0:
                self.df[w] = left
            else:
                self.df.pop(w, None)


@dataclass
class Context:
    """What `decide` reads: the open dedup groups of the keys at hand, the open issues' features
    and the gateway's routes. Loaded once for a batch of signals (over a shared `Snapshot`);
    `note` keeps it current as the batch's decisions are taken."""

    routes: Sequence[RouteInfo]
    groups: dict[str, GroupRef] = field(default_factory=dict)
    snapshot: Snapshot = field(default_factory=Snapshot)
    threshold: float = ATTACH_THRESHOLD
    correlation: bool = True
    since: float | None = None  # issues last seen before this are no candidates
    issues: dict[int, IssueFeatures] = field(init=False)
    _components: dict[str, str] = field(default_factory=dict, init=False)
    _upstreams: dict[str, str] = field(default_factory=dict, init=False)
    # the batch's own changes over the snapshot: more index entries, title-word counts
    _index: dict[_Key, set[int]] = field(default_factory=dict, init=False)
    _df: dict[str, int] = field(default_factory=dict, init=False)
    _route_words: dict[str, tuple[int, ...]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        since = self.since
        if since is None:
            self.issues = dict(self.snapshot.issues)
        else:
            self.issues = {k: f for k, f in self.snapshot.issues.items() if f.last_seen >= since}
        self._components = {r.name: r.component for r in self.routes if r.component}
        self._upstreams = {r.name: r.upstream for r in self.routes if r.upstream}
        self._route_words = _route_word_index(tuple(self.routes))

    def infer(self, text: str, minimum: float = 0.6) -> tuple[RouteInfo, float] | None:
        """`infer_route(text, self.routes)`, looking at the routes that share a word with the
        text only (the others have no similarity): the same route, found without scoring
        every route."""
        shared: dict[int, int] = {}
        index = self._route_words
        for word in tokens(text):
            for position in index.get(word, ()):
                shared[position] = shared.get(position, 0) + 1
        best: tuple[RouteInfo, float] | None = None
        routes = self.routes
        for position in sorted(shared):
            route = routes[position]
            sim = shared[position] / len(route.words())
            if sim >= minimum and (
                best is None
                or sim > best[1]
                or (sim == best[1] and len(route.words()) > len(best[0].words()))
            ):
                best = (route, sim)
        return best

    def uncommon(self, word: str) -> bool:
        """In at most `UNCOMMON_SHARE` of the open issues' titles (at least one)."""
        if len(word) <= 2 or word.isdigit():
            return False
        count = self.snapshot.df.get(word, 0) + self._df.get(word, 0)
        return count <= max(1, int(len(self.issues) * UNCOMMON_SHARE))

    def note(self, issue: IssueFeatures) -> None:
        """An issue opened or changed by a decision of the batch."""
        old = self.issues.get(issue.issue_id)
        self.issues[issue.issue_id] = issue
        before = old.words if old is not None else frozenset()
        for w in issue.words - before:
            self._df[w] = self._df.get(w, 0) + 1
        for w in before - issue.words:
            self._df[w] = self._df.get(w, 0) - 1
        for key in _keys(issue):
            self._index.setdefault(key, set()).add(issue.issue_id)

    def forget(self, issue_id: int) -> None:
        old = self.issues.pop(issue_id, None)
        for w in old.words if old is not None else ():
            self._df[w] = self._df.get(w, 0) - 1

    def _lookup(self, key: _Key) -> Iterable[int]:
        found = self.snapshot.index.get(key)
        extra = self._index.get(key)
        if found is None:
            return extra or ()
        return found | extra if extra else found

    def candidates(
        self,
        route: str | None,
        component: str | None,
        upstream: str | None,
        words: Iterable[str],
        occurred_at: float,
    ) -> list[IssueFeatures]:
        """The open issues sharing a route, component, upstream or one of `words` with a signal
        (the only ones `score` can link it to: open dedup groups are matched before)."""
        ids: set[int] = set()
        if route:
            ids.update(self._lookup(("r", route)))
        for word in words:
            ids.update(self._lookup(("w", word)))
        near: Iterable[int] = ()  # these count only when they started together
        if component:
            if route:
                near = self._lookup(("c", component))
            else:
                ids.update(self._lookup(("c", component)))
        elif upstream and route:
            near = self._lookup(("u", upstream))
        issues = self.issues
        found = [i for i in ids if i in issues]
        for i in near:
            f = issues.get(i)
            if (
                i not in ids
                and f is not None
                and abs(f.first_seen - occurred_at) <= TOGETHER_SECONDS
            ):
                found.append(i)
        return [issues[i] for i in sorted(found)]


@functools.lru_cache(maxsize=16)
def _route_word_index(routes: tuple[RouteInfo, ...]) -> dict[str, tuple[int, ...]]:
    """Word → the positions of the routes whose own words hold it."""
    index: dict[str, list[int]] = {}
    for position, route in enumerate(routes):
        for word in route.words():
            index.setdefault(word, []).append(position)
    return {word: tuple(positions) for word, positions in index.items()}


def decide(signal: SignalFeatures, context: Context) -> Decision:
    """Where `signal` goes, and why — pure, over `context`.

    In order: a sender-chosen issue; the open dedup group of its key; with correlation on,
    the best-scoring open issue with specific evidence; else a new issue (a firing signal that
    may open one). With ``context.correlation`` False this is exact dedup."""
    resolved = _resolve(signal, context.routes, context.infer)
    route, why, _how = resolved
    component = signal.component or context._components.get(route or "")
    base = Decision(Action.none, route=route, route_reason=why, component=component)
    if signal.issue_id is not None:
        return replace(
            base,
            action=Action.join_group,
            issue_id=signal.issue_id,
            reasons=("added to this issue by its sender",),
            reprioritise=_may_change_impact(signal),
        )
    group = context.groups.get(signal.dedup_key or "")
    if group is not None and group.issue_open:
        return replace(
            base,
            action=Action.join_group,
            issue_id=group.issue_id,
            reasons=("same dedup key",),
            reprioritise=_may_change_impact(signal),
        )
    if group is not None and group.reopenable and signal.status == "firing":
        return replace(
            base,
            action=Action.reopen,
            issue_id=group.issue_id,
            reasons=("same dedup key", "fired again after it was resolved automatically"),
            reprioritise=True,
        )
    if signal.status == "resolved" or not signal.create:
        return base
    if context.correlation and context.issues:
        words = (
            [w for w in tokens(signal.text) if context.uncommon(w)] if signal.kind == "user" else []
        )
        candidates = context.candidates(
            route, component, context._upstreams.get(route or ""), words, signal.occurred_at
        )
        link, _ = best_link(
            signal,
            candidates,
            context.routes,
            context._components,
            context.threshold,
            route_upstreams=context._upstreams,
            uncommon=context.uncommon,
            resolved=resolved,
            ascending=True,  # `candidates` sorts them by id
        )
        if link is not None:
            return replace(
                base,
                action=Action.link,
                issue_id=link.issue_id,
                score=link.score,
                reasons=link.reasons,
                reprioritise=link.strong,
            )
    return replace(base, action=Action.open, reasons=("opened this issue",), reprioritise=True)


def _may_change_impact(signal: SignalFeatures) -> bool:
    """A repeat of a known alert changes nothing the impact table looks at (its severity was
    weighed when it first arrived); a new report by a person (more users) or fresh gateway
    evidence (the failing share) may."""
    return signal.kind == "user" or signal.source == "gateway"


# --- flapping ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Flap:
    """Fire/resolve cycles of one dedup key (one rule on one route) on an issue."""

    dedup_key: str
    cycles: int  # times it fired again after resolving
    changes: int  # status changes (fired → resolved → fired … counts each arrow)
    last_change: float  # Unix seconds
    status: str  # the latest: firing | resolved


def flaps(events: Iterable[tuple[str, str, float]]) -> list[Flap]:
    """The keys that fired again after resolving, from (dedup key, status, at) in arrival
    order; repeats of the same status are not changes. A flapping key keeps its issue: the
    repeats join its dedup group instead of opening issues."""
    state: dict[str, tuple[str, int, int, float]] = {}  # key → (status, cycles, changes, at)
    for key, status, at in events:
        if status not in ("firing", "resolved"):
            continue
        old = state.get(key)
        if old is None:
            state[key] = (status, 0, 0, at)
        elif old[0] != status:
            refire = status == "firing"
            state[key] = (status, old[1] + refire, old[2] + 1, at)
    return sorted(
        (Flap(k, c, n, at, st) for k, (st, c, n, at) in state.items() if c > 0),
        key=lambda f: (-f.cycles, f.dedup_key),
    )
