"""The detector on synthetic call records with a fake clock."""

import random

from hypercare.detection.engine import Detector
from hypercare.detection.live import LiveWindows
from hypercare.detection.rules import default_rules
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
        assert both.upstream_errors == sum(r.error in ("timeout", "reset") for r in mine)
        assert both.gateway_errors == sum(
            r.status < 500 and r.error in ("timeout", "reset", "no_healthy_target") for r in mine
        )
