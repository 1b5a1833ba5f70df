"""The detector on synthetic call records with a fake clock."""

import random

from hypercare.detection.engine import Detector
from hypercare.detection.live import LiveWindows
from hypercare.detection.rules import RouteOverride, WindowStats, default_rules
from hypercare.gateway.records import CallRecord

T0 = 1_800_000_000.0


def record(t: float, route: str, status: int = 200, ms: float = 20.0, rid: str = "") -> CallRecord:
    return CallRecord(
        time=t,
        route=route,
        consumer="app",
        method="GET",
        path_template=f"/{route}",
        path=f"/{route}",
        status=status,
        request_bytes=0,
        response_bytes=10,
        target="t:1",
        gateway_ms=0.2,
        upstream_ms=ms,
        total_ms=ms,
        error="",
        client_ip="127.0.0.1",
        request_id=rid or f"r{t}",
        trace_id="0" * 32,
    )


def traffic(
    live: LiveWindows,
    start: float,
    end: float,
    route: str,
    rng: random.Random,
    fail: float = 0.0,
    ms: float = 20.0,
) -> None:
    t = start
    while t < end:
        for _ in range(20):  # 20 requests per second
            bad = rng.random() < fail
            live.observe(
                [record(t + rng.random(), route, 503 if bad else 200, rng.expovariate(1 / ms))]
            )
        t += 1


def run(detector: Detector, start: float, end: float) -> list[tuple[float, str, str, str]]:
    out = []
    t = start
    while t <= end:
        out += [(t, f.kind, f.rule.name, f.route) for f in detector.tick(t)]
        t += 2
    return out


def test_a_failing_route_fires_within_seconds_and_resolves_after_recovery() -> None:
    rng = random.Random(1)
    live = LiveWindows()
    detector = Detector(default_rules(), live)
    onset = T0 + 600
    traffic(live, T0, onset, "payment-status", rng)
    traffic(live, T0, onset + 120, "catalog", rng)
    assert run(detector, T0 + 30, onset) == []
    traffic(live, onset, onset + 60, "payment-status", rng, fail=0.4, ms=400)
    fired = [e for e in run(detector, onset + 2, onset + 60) if e[1] == "fire"]
    rate = next(e for e in fired if e[2] == "5xx-rate")
    assert rate[3] == "payment-status"
    assert rate[0] - onset <= 10
    assert {e[3] for e in fired} == {"payment-status"}  # catalog is healthy
    # the impact start is found near the real onset, not at the window's edge
    finding = next(f for f in _fire_findings(live, onset) if f.rule.name == "5xx-rate")
    assert abs(finding.impact_started_at - onset) <= 6
    traffic(live, onset + 60, onset + 180, "payment-status", rng)
    resolved = [e for e in run(detector, onset + 62, onset + 180) if e[1] == "resolve"]
    assert any(e[2] == "5xx-rate" for e in resolved)


def _fire_findings(live: LiveWindows, onset: float) -> list:  # type: ignore[type-arg]
    detector = Detector(default_rules(), live)
    found = []
    t = onset + 2
    while t < onset + 40:
        found += [f for f in detector.tick(t) if f.kind == "fire"]
        t += 2
    return found


def test_latency_against_baseline() -> None:
    rng = random.Random(2)
    live = LiveWindows()
    detector = Detector(default_rules(), live)
    onset = T0 + 1800
    traffic(live, T0, onset, "orders", rng, ms=30)
    run(detector, onset - 10, onset)
    traffic(live, onset, onset + 60, "orders", rng, ms=600)
    fired = [e for e in run(detector, onset + 2, onset + 60) if e[1] == "fire"]
    assert ("p95-vs-baseline", "orders") in {(e[2], e[3]) for e in fired}


def test_no_healthy_target_fires_without_traffic() -> None:
    live = LiveWindows()
    detector = Detector(default_rules(), live)
    live.set_healthy_targets("payments", 0)
    fired = [e for e in run(detector, T0, T0 + 4) if e[1] == "fire"]
    assert ("no-healthy-target", "payments") in {(e[2], e[3]) for e in fired}


def test_rising_error_rate_raises_a_forecast_before_the_breach() -> None:
    rng = random.Random(3)
    live = LiveWindows()
    detector = Detector(default_rules(), live)
    traffic(live, T0, T0 + 300, "search", rng)
    t = T0 + 300
    for i in range(150):  # failure share creeping up 0.03 % per second, still under 5 %
        traffic(live, t + i, t + i + 1, "search", rng, fail=0.0003 * i)
    events = run(detector, t + 2, t + 150)
    kinds = [(e[1], e[2]) for e in events]
    assert ("forecast", "5xx-rate") in kinds
    assert ("fire", "5xx-rate") not in kinds


def test_a_batch_counts_the_same_as_its_records_one_by_one() -> None:
    rng = random.Random(7)
    records = []
    for i in range(3000):
        status = rng.choice((200, 200, 200, 401, 403, 404, 429, 500, 502, 503))
        error = rng.choice(("", "", "timeout", "no_healthy_target", "reset")) if i % 3 else ""
        r = record(T0 + i * 5 / 3000, rng.choice(("a", "b", "")), status, rng.random() * 90)
        records.append(r._replace(error=error, path=f"/p/{rng.randrange(80)}"))
    together, alone = LiveWindows(), LiveWindows()
    together.observe(records)
    for r in records:
        alone.observe([r])
    assert set(together.routes) == set(alone.routes) == {"a", "b"}
    for route in ("a", "b"):
        for t in range(5):
            got = together.stats(route, T0 + t, T0 + t + 1)
            assert got == alone.stats(route, T0 + t, T0 + t + 1)
        both = together.stats(route, T0, T0 + 5)
        mine = [r for r in records if r.route == route]
        assert both.requests == len(mine)
        assert both.status_5xx == sum(r.status >= 500 for r in mine)
        assert both.auth_failures == sum(r.status in (401, 403) for r in mine)
        assert both.rate_limited == sum(r.status == 429 for r in mine)
        # no_healthy_target is an upstream error here as in telemetry: one classification
        upstream = ("timeout", "reset", "no_healthy_target")
        assert both.upstream_errors == sum(r.error in upstream for r in mine)
        assert both.gateway_errors == sum(r.status < 500 and r.error in upstream for r in mine)


def steady(
    live: LiveWindows,
    start: float,
    end: float,
    route: str,
    rng: random.Random,
    *,
    rate: int = 20,
    status: int = 200,
    ms: float = 20.0,
) -> None:
    """`rate` calls a second over [start, end), all answered `status` in about `ms`."""
    t = start
    while t < end:
        live.observe(
            [record(t + rng.random(), route, status, rng.expovariate(1 / ms)) for _ in range(rate)]
        )
        t += 1


def fired(events: list[tuple[float, str, str, str]]) -> set[tuple[str, str]]:
    return {(e[2], e[3]) for e in events if e[1] == "fire"}


def test_a_late_nodes_batch_older_than_the_oldest_second_held_is_counted() -> None:
    live = LiveWindows(keep_seconds=60)
    live.observe([record(T0 + 10, "orders"), record(T0 + 11, "orders")])
    # a node whose batch was held up ships seconds before the oldest one the window holds
    live.observe([record(T0 + 3, "orders", 503), record(T0 + 5.5, "orders")])
    assert live.stats("orders", T0, T0 + 20).requests == 4
    assert live.stats("orders", T0 + 3, T0 + 4).status_5xx == 1
    assert [b.second for b in live.routes["orders"].buckets] == [
        int(T0) + 3,
        int(T0) + 5,
        int(T0) + 10,
        int(T0) + 11,
    ]
    # but nothing older than `keep` seconds before the newest second held
    live.observe([record(T0 - 60, "orders")])
    assert live.stats("orders", T0 - 100, T0 + 20).requests == 4


def test_a_route_slow_from_its_first_minute_fires_without_any_history() -> None:
    rng = random.Random(11)
    live = LiveWindows()
    detector = Detector(default_rules(), live)
    steady(live, T0, T0 + 60, "reports", rng, ms=1500)  # all 200s, p95 around 4.5 s
    events = run(detector, T0 + 2, T0 + 60)
    assert fired(events) == {("p95-above-bound", "reports")}
    first = min(e[0] for e in events if e[1] == "fire")
    assert first - T0 <= 30


def test_credential_stuffing_from_the_start_is_a_security_finding() -> None:
    rng = random.Random(12)
    live = LiveWindows()
    detector = Detector(default_rules(), live)
    steady(live, T0, T0 + 40, "login", rng, rate=30, status=401)
    steady(live, T0, T0 + 40, "login", rng, rate=5)
    found = []
    t = T0 + 2
    while t <= T0 + 40:
        found += [f for f in detector.tick(t) if f.kind == "fire"]
        t += 2
    assert [f.rule.name for f in found] == ["auth-failure-share"]
    assert found[0].dedup_key == "security:auth-failure-share:login"
    assert found[0].rule.category == "security"
    assert found[0].impact_started_at - T0 <= 3


def test_few_calls_fire_no_latency_rule() -> None:
    # the demo's false P2: 74 calls in a 30 s window, a few slow ones
    rng = random.Random(13)
    live = LiveWindows()
    detector = Detector(default_rules(), live)
    steady(live, T0, T0 + 1800, "orders", rng, rate=3, ms=30)
    steady(live, T0 + 1800, T0 + 1860, "orders", rng, rate=2, ms=900)
    assert fired(run(detector, T0 + 1800, T0 + 1860)) == set()


def test_baselines_come_from_the_stored_minutes_after_a_restart() -> None:
    rng = random.Random(14)
    now = T0 + 3600
    stored = {
        "orders": {
            int(m): WindowStats("orders", m, m + 60, requests=1200, p95=40.0)
            for m in range(int(now) - 40 * 60, int(now) - 60, 60)
        }
    }
    live = LiveWindows()  # a fresh console: the live windows are empty
    steady(live, now - 20, now + 60, "orders", rng, ms=200)  # p95 around 600 ms: under 1 s
    restarted = Detector(default_rules(), live)
    assert fired(run(restarted, now, now + 60)) == set()  # no history: no baseline yet
    restarted = Detector(default_rules(), live)
    restarted.set_history(stored)
    assert fired(run(restarted, now, now + 60)) == {("p95-vs-baseline", "orders")}


def test_a_new_route_takes_the_baseline_of_the_route_named_in_baseline_from() -> None:
    rng = random.Random(15)
    now = T0 + 3600
    stored = {
        "orders-v1": {
            int(m): WindowStats("orders-v1", m, m + 60, requests=1200, p95=40.0)
            for m in range(int(now) - 40 * 60, int(now) - 60, 60)
        }
    }
    live = LiveWindows()
    steady(live, now - 20, now + 60, "orders-v2", rng, ms=200)
    plain = Detector(default_rules(), live)
    plain.set_history(stored)
    assert fired(run(plain, now, now + 60)) == set()
    peer = Detector(
        default_rules(), live, overrides={"orders-v2": RouteOverride(baseline_from="orders-v1")}
    )
    peer.set_history(stored)
    assert fired(run(peer, now, now + 60)) == {("p95-vs-baseline", "orders-v2")}


def test_for_is_counted_from_the_first_breaching_second() -> None:
    rng = random.Random(16)
    live = LiveWindows()
    detector = Detector(default_rules(), live)
    onset = T0 + 120
    steady(live, T0, onset, "search", rng, rate=20, ms=20)
    steady(live, onset, onset + 60, "search", rng, rate=20, ms=1500)
    events = run(detector, T0 + 30, onset + 60)
    fire = next(e for e in events if e[1] == "fire" and e[2] == "p95-above-bound")
    # `for: 20s` from the first slow second, not met at the first breaching evaluation
    assert fire[0] - onset >= 20
    assert fire[0] - onset <= 30


def test_impact_start_is_the_first_bad_second_even_when_batches_lag() -> None:
    rng = random.Random(17)
    live = LiveWindows()
    onset = T0 + 100
    traffic(live, T0, onset, "pay", rng)
    traffic(live, onset, onset + 8, "pay", rng, fail=0.4)
    detector = Detector(default_rules(), live)
    # the detector runs at onset + 11: the last three seconds' batches have not arrived
    found = [f for f in detector.tick(onset + 11) if f.kind == "fire"]
    assert [f.rule.name for f in found] == ["5xx-rate"]
    assert onset <= found[0].impact_started_at <= onset + 2


def test_a_dead_upstream_dates_its_impact_from_the_first_failing_call() -> None:
    rng = random.Random(18)
    live = LiveWindows()
    detector = Detector(default_rules(), live)
    died = T0 + 60
    traffic(live, T0, died, "pay", rng)
    assert run(detector, T0 + 30, died) == []
    live.observe([record(died + 0.5, "pay", 503)._replace(error="connect_failed")])
    live.set_healthy_targets("pay", 0)
    found = [f for f in detector.tick(died + 3) if f.kind == "fire"]
    assert {f.rule.name for f in found} == {"no-healthy-target"}
    assert found[0].impact_started_at == int(died)


def test_healthy_noisy_traffic_raises_nothing() -> None:
    """Ten minutes of healthy traffic with realistic noise on five routes: jittery latency
    with a long tail, a few 404s, rare single 500s, one slow request now and then, traffic
    that doubles and halves: no finding of any kind."""
    rng = random.Random(19)
    live = LiveWindows()
    detector = Detector(default_rules(), live)
    routes = {"catalog": 20, "orders": 10, "login": 8, "search": 12, "reports": 3}
    events: list[tuple[float, str, str, str]] = []
    end = T0 + 600
    t = T0
    while t < end:
        batch = []
        for route, rate in routes.items():
            wave = 1.0 + 0.5 * ((t - T0) // 120 % 2)  # traffic doubles and halves
            for _ in range(int(rate * wave * rng.uniform(0.6, 1.4))):
                roll = rng.random()
                status = 404 if roll < 0.02 else 401 if roll < 0.025 else 200
                if rng.random() < 0.002:
                    status = 500
                ms = rng.lognormvariate(3.5, 0.6)  # median 33 ms, a long tail
                if rng.random() < 0.003:
                    ms = rng.uniform(800, 3000)
                batch.append(record(t + rng.random(), route, status, ms))
        live.observe(batch)
        t += 1
        if (t - T0) % 2 == 0:
            events += [(t, f.kind, f.rule.name, f.route) for f in detector.tick(t)]
    assert events == []


def test_the_loops_tick_route_by_route_finds_what_tick_finds() -> None:
    import asyncio

    from hypercare.detection.jobs import DetectionRuntime, tick

    rng = random.Random(3)
    live = LiveWindows()
    onset = T0 + 600
    for route in ("payment-status", "catalog", "orders"):
        traffic(live, T0, onset, route, rng)
    traffic(live, onset, onset + 40, "payment-status", rng, fail=0.5, ms=400)
    traffic(live, onset, onset + 40, "orders", rng, fail=0.2)
    whole = Detector(default_rules(), live)
    by_route = DetectionRuntime(live=live, detector=Detector(default_rules(), live))

    def seen(findings: list) -> list[tuple[str, str, str, float]]:  # type: ignore[type-arg]
        return [(f.kind, f.rule.name, f.route, f.impact_started_at) for f in findings]

    t, a, b = onset - 20, [], []
    while t < onset + 40:
        a += seen(whole.tick(t))
        b += seen(asyncio.run(tick(by_route, t)))
        t += 2
    assert any(kind == "fire" for kind, *_ in a)
    assert a == b
