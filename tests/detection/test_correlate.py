from dataclasses import replace

from hypercare.detection.correlate import (
    Action,
    Context,
    GroupRef,
    IssueFeatures,
    RouteInfo,
    SignalFeatures,
    best_link,
    category,
    decide,
    ids_in_text,
    infer_route,
    route_for_path,
    text_similarity,
    tokens,
)

ROUTES = [
    RouteInfo("payment-status", "/payment/status", "payments"),
    RouteInfo("payment-create", "/payments", "payments"),
    RouteInfo("catalog-search", "/catalog/search", "catalog"),
    RouteInfo("order-detail", "/orders/{id}", "orders"),
    RouteInfo("static", "/assets/*", "web"),
]
T = 1_000_000.0


def issue(
    issue_id: int, routes: set[str], components: set[str] | None = None, **kw: object
) -> IssueFeatures:
    return IssueFeatures(
        issue_id=issue_id,
        dedup_keys=frozenset(kw.pop("keys", set())),  # type: ignore[arg-type]
        routes=frozenset(routes),
        components=frozenset(components or set()),
        first_seen=T,
        last_seen=T,
        **kw,  # type: ignore[arg-type]
    )


def signal(**kw: object) -> SignalFeatures:
    base: dict[str, object] = {
        "signal_id": 1,
        "kind": "user",
        "source": "ticket",
        "occurred_at": T + 180,
    }
    base.update(kw)
    return SignalFeatures(**base)  # type: ignore[arg-type]


def test_tokens_stem_and_drop_noise() -> None:
    assert tokens("Payment status updates are delayed!") == {"payment", "status", "update", "delay"}


def test_free_text_finds_the_route_it_talks_about() -> None:
    text = "payment status updates are delayed for our customers"
    assert text_similarity(text, ROUTES[0]) == 1.0
    found = infer_route(text, ROUTES)
    assert found is not None
    assert found[0].name == "payment-status"
    assert infer_route("the app feels nice", ROUTES) is None


def test_url_paths_map_to_route_patterns() -> None:
    assert route_for_path("/orders/123?x=1", ROUTES).name == "order-detail"  # type: ignore[union-attr]
    assert route_for_path("/assets/app.js", ROUTES).name == "static"  # type: ignore[union-attr]
    assert route_for_path("/payment/status/", ROUTES).name == "payment-status"  # type: ignore[union-attr]
    assert route_for_path("/nowhere", ROUTES) is None


def test_ticket_text_joins_the_gateway_issue_with_reasons() -> None:
    gateway_issue = issue(7, {"payment-status"}, {"payments"})
    link, route = best_link(
        signal(text="Payment status updates are delayed"),
        [gateway_issue],
        ROUTES,
        {"payment-status": "payments"},
    )
    assert route == "payment-status"
    assert link is not None
    assert link.issue_id == 7
    assert any("text mentions payment-status" in r for r in link.reasons)
    assert "3 min apart" in link.reasons


def test_cited_request_id_is_strong_evidence() -> None:
    link, _ = best_link(
        signal(text="it broke", cited_routes={"4bf92f3577b34da6": "payment-status"}),
        [issue(7, {"payment-status"})],
        ROUTES,
    )
    assert link is not None
    assert "cites request id 4bf92f3577b3 of a call on route payment-status" in link.reasons[0]


def test_unrelated_routes_failing_together_stay_apart() -> None:
    link, route = best_link(
        signal(kind="system", source="gateway", route="catalog-search", component="catalog"),
        [issue(7, {"payment-status"}, {"payments"})],
        ROUTES,
    )
    assert route == "catalog-search"
    assert link is None


def test_same_component_different_route_merges_only_when_they_start_together() -> None:
    together = signal(route="payment-create", component="payments", occurred_at=T + 40)
    link, _ = best_link(together, [issue(7, {"payment-status"}, {"payments"})], ROUTES)
    assert link is not None
    assert link.issue_id == 7
    assert link.strong
    assert (
        "route payment-create of the same component payments, started together (40 s apart)"
        in link.reasons
    )
    later = signal(route="payment-create", component="payments", occurred_at=T + 1800)
    link, _ = best_link(later, [issue(7, {"payment-status"}, {"payments"})], ROUTES)
    assert link is None


def test_dedup_key_always_wins_and_split_signals_stay_out() -> None:
    same_key = signal(dedup_key="am:abc", route="catalog-search")
    link, _ = best_link(same_key, [issue(3, {"payment-status"}, keys={"am:abc"})], ROUTES)
    assert link is not None
    assert link.issue_id == 3
    excluded = issue(3, {"payment-status"}, keys={"am:abc"}, excluded_signals=frozenset({1}))
    link, _ = best_link(same_key, [excluded], ROUTES)
    assert link is None


def test_old_issues_attract_less() -> None:
    stale = IssueFeatures(
        9, frozenset(), frozenset({"payment-status"}), frozenset(), T - 86400, T - 86400
    )
    link, _ = best_link(signal(route="payment-status"), [stale], ROUTES)
    assert link is None  # 0.6 halved by a day's distance
    fresh = issue(9, {"payment-status"})
    link, _ = best_link(signal(route="payment-status"), [fresh], ROUTES)
    assert link is not None
    assert link.score == 0.75


def test_nothing_in_common_means_a_new_issue() -> None:
    link, route = best_link(
        signal(text="love the new design"), [issue(1, {"payment-status"})], ROUTES
    )
    assert (link, route) == (None, None)


# --- precision, cause, categories -------------------------------------------------------------


def test_one_common_word_is_not_evidence() -> None:
    # "users DB disk 95%" must not join "UsersHighLatency" on the word "users"
    routes = [*ROUTES, RouteInfo("users", "/users", "accounts")]
    latency = issue(4, {"users"}, {"accounts"}, words=tokens("UsersHighLatency users latency"))
    link, route = best_link(
        signal(kind="system", source="pagerduty", text="users DB disk 95%"),
        [latency],
        routes,
        uncommon=lambda w: True,
    )
    assert link is None
    assert route is None  # one word of a route's name is not a mention of it


def test_several_uncommon_words_link_and_common_ones_do_not() -> None:
    title = tokens("Invoice PDF renderer crashes on ligatures")
    target = issue(5, set(), words=title)
    text = "the invoice pdf renderer crashes again"
    link, _ = best_link(signal(text=text), [target], ROUTES, uncommon=lambda w: True)
    assert link is not None
    assert link.reasons[0].startswith("shares uncommon words crash, invoice, pdf")
    assert not link.strong  # never raises a priority
    link, _ = best_link(signal(text=text), [target], ROUTES, uncommon=lambda w: False)
    assert link is None


def test_routes_on_the_same_upstream_starting_together_join() -> None:
    routes = [RouteInfo("a", "/a", upstream="shared"), RouteInfo("b", "/b", upstream="shared")]
    upstreams = {"a": "shared", "b": "shared"}
    target = issue(3, {"a"}, upstreams=frozenset({"shared"}))
    together = signal(kind="system", source="gateway", route="b", occurred_at=T + 30)
    link, _ = best_link(together, [target], routes, route_upstreams=upstreams)
    assert link is not None
    assert "route b on the same upstream shared, started together (30 s apart)" in link.reasons
    # routes of different components stay apart, whatever runs behind them
    other = issue(4, {"a"}, {"alpha"}, upstreams=frozenset({"shared"}))
    link, _ = best_link(
        together, [other], routes, {"a": "alpha", "b": "beta"}, route_upstreams=upstreams
    )
    assert link is None


def test_security_signals_never_join_application_issues() -> None:
    app_issue = issue(2, {"payment-status"}, {"payments"})
    attack = signal(
        kind="system",
        source="gateway",
        route="payment-status",
        category=category("system", {"rule": "auth-failure-spike"}),
    )
    link, _ = best_link(attack, [app_issue], ROUTES)
    assert link is None
    sec_issue = issue(3, {"payment-status"}, categories=frozenset({"security"}))
    link, _ = best_link(attack, [app_issue, sec_issue], ROUTES)
    assert link is not None
    assert link.issue_id == 3
    assert category("security", None) == "security"
    assert category("system", {"category": "security"}) == "security"


def test_traffic_drop_joins_only_its_own_route() -> None:
    drop = signal(
        kind="system",
        source="gateway",
        route="payment-create",
        component="payments",
        category=category("system", {"rule": "traffic-drop"}),
        occurred_at=T + 10,
    )
    same_component = issue(7, {"payment-status"}, {"payments"})
    no_route = issue(8, set(), {"payments"})
    link, _ = best_link(drop, [same_component, no_route], ROUTES, {"payment-create": "payments"})
    assert link is None
    own = issue(9, {"payment-create"}, {"payments"}, categories=frozenset({"traffic"}))
    link, _ = best_link(drop, [same_component, own], ROUTES, {"payment-create": "payments"})
    assert link is not None
    assert link.issue_id == 9


def test_ties_go_to_the_oldest_issue_whatever_the_order() -> None:
    a, b = issue(2, {"payment-status"}), issue(3, {"payment-status"})
    s = signal(text="Payment status updates are delayed")
    assert best_link(s, [a, b], ROUTES)[0].issue_id == 2  # type: ignore[union-attr]
    assert best_link(s, [b, a], ROUTES)[0].issue_id == 2  # type: ignore[union-attr]


def test_ids_in_free_text() -> None:
    text = (
        "Order failed, request id 4BF92F3577B34DA6A3CE929D0E0E4736. traceparent "
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01, ref "
        "123e4567-e89b-12d3-a456-426614174000; order 12345678901234567890 deadbeefcafebabe"
    )
    assert ids_in_text(text) == (
        "0af7651916cd43dd8448eb211c80319c",
        "123e4567-e89b-12d3-a456-426614174000",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "b7ad6b7169203331",
    )
    assert ids_in_text("nothing here, 2026-12-06 at 10:42") == ()


# --- decide ------------------------------------------------------------------------------------


def context(*issues: IssueFeatures, **kw: object) -> Context:
    made = Context(routes=ROUTES, **kw)  # type: ignore[arg-type]
    for i in issues:
        made.note(i)
    return made


def test_decide_joins_the_open_group_first() -> None:
    ctx = context(issue(7, {"catalog-search"}), groups={"am:1": GroupRef(7, True)})
    d = decide(signal(dedup_key="am:1", route="payment-status", kind="system"), ctx)
    assert (d.action, d.issue_id, d.reasons) == (Action.join_group, 7, ("same dedup key",))
    assert not d.reprioritise  # a repeat of a known alert changes no impact


def test_decide_is_exact_dedup_with_correlation_off() -> None:
    ctx = context(issue(7, {"payment-status"}), correlation=False)
    d = decide(signal(route="payment-status", dedup_key="x"), ctx)
    assert d.action is Action.open


def test_decide_links_with_score_and_reasons_and_opens_on_nothing_specific() -> None:
    ctx = context(issue(7, {"payment-status"}, {"payments"}))
    d = decide(signal(route="payment-status", dedup_key="x", kind="system"), ctx)
    assert (d.action, d.issue_id) == (Action.link, 7)
    assert d.score == 1.0
    assert d.reasons[0] == "same route payment-status"
    assert d.reprioritise
    d = decide(signal(text="the app feels slow today", dedup_key="y"), ctx)
    assert d.action is Action.open
    d = decide(signal(status="resolved", dedup_key="z"), ctx)
    assert d.action is Action.none


def test_decide_links_a_stated_component() -> None:
    ctx = context(issue(7, set(), {"payments"}))
    d = decide(signal(kind="system", source="alertmanager", component="payments"), ctx)
    assert (d.action, d.issue_id) == (Action.link, 7)
    assert d.reasons[0] == "same component payments"
    assert d.reprioritise


def test_context_infer_finds_the_route_infer_route_finds() -> None:
    # the indexed lookup scores only routes sharing a word: same answer, ties included
    routes = [
        *ROUTES,
        RouteInfo("payment-status-v2", "/payment/status/v2", "payments"),
        RouteInfo("status", "/status"),
        RouteInfo("wordless", "/{id}"),
    ]
    context = Context(routes=routes)
    texts = [
        "payment status page is broken",
        "cannot search the catalog",
        "order detail and payment status both fail",
        "status",
        "/payment/status/v2 returns 500",
        "nothing relevant here",
        "",
        "payments payment create status catalog search orders detail",
    ]
    for text in texts:
        assert context.infer(text) == infer_route(text, routes), text
        assert context.infer(text, 0.3) == infer_route(text, routes, 0.3), text


def test_best_link_skips_only_what_could_not_link() -> None:
    # alerts without a route are not scored against issues too far apart to reach the
    # threshold: the same link as scoring every issue
    import random

    from hypercare.detection.correlate import Link, score

    rng = random.Random(7)
    components = ["payments", "catalog", "orders"]
    for _ in range(300):
        issues = [
            issue(
                i,
                set(),
                {rng.choice(components)},
                keys={"k"} if rng.random() < 0.05 else set(),
            )
            for i in range(1, 30)
        ]
        issues = [
            replace(f, first_seen=T - rng.uniform(0, 30_000), last_seen=T - rng.uniform(0, 3000))
            for f in issues
        ]
        signal = SignalFeatures(
            signal_id=1,
            kind=rng.choice(["system", "user"]),
            source="alertmanager",
            occurred_at=T,
            dedup_key=rng.choice(["k", "other"]),
            component=rng.choice(components),
        )
        threshold = rng.choice([0.4, 0.5, 0.6])
        link, _ = best_link(signal, issues, ROUTES, threshold=threshold)
        best: Link | None = None
        for f in issues:
            found = score(
                signal, f, route=None, route_reason=None, component=signal.component, how=""
            )
            specific = any(not r.endswith(("apart", "apart (weaker)")) for r in found.reasons)
            if found.score < threshold or not specific:
                continue
            if best is None or (found.score, -found.issue_id) > (best.score, -best.issue_id):
                best = found
        assert link == best
