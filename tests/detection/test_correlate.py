from hypercare.detection.correlate import (
    IssueFeatures,
    RouteInfo,
    SignalFeatures,
    best_link,
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
