from hypercare.detection.rules import WindowStats
from hypercare.detection.validation import compare, judge

W = WindowStats(route="payment-status", start=0, end=60, requests=600, status_5xx=1, p95=41.0)
T = 1000.0


def decide(
    elapsed: float, firing: list[tuple[str, float]] | None = None, reports: int = 0
) -> object:
    return judge(
        elapsed=elapsed,
        window=60,
        grace=90,
        started=T,
        firing=firing or [],
        new_user_reports=reports,
        after=[W],
    )


def test_watching_until_the_window_passes_then_verified_with_numbers() -> None:
    assert decide(30).outcome == "watching"  # type: ignore[attr-defined]
    done = decide(61)
    assert done.outcome == "verified"  # type: ignore[attr-defined]
    assert done.reasons == ("payment-status: 600 calls, error rate 0.2 %, p95 41 ms",)  # type: ignore[attr-defined]


def test_a_rule_firing_before_the_fix_gets_time_to_clear() -> None:
    assert decide(10, [("5xx-rate", T - 100)]).outcome == "watching"  # type: ignore[attr-defined]
    assert decide(70, [("5xx-rate", T - 100)]).outcome == "watching"  # type: ignore[attr-defined]
    stuck = decide(95, [("5xx-rate", T - 100)])
    assert stuck.outcome == "regressed"  # type: ignore[attr-defined]
    assert "still firing 95 s after the fix" in stuck.reasons[0]  # type: ignore[attr-defined]


def test_regression_by_rule_or_by_users() -> None:
    by_rule = decide(5, [("5xx-rate", T + 2)])
    assert (by_rule.outcome, by_rule.reasons) == ("regressed", ("rule 5xx-rate fired again",))  # type: ignore[attr-defined]
    by_users = decide(5, reports=2)
    assert by_users.outcome == "regressed"  # type: ignore[attr-defined]
    assert "2 new user report(s)" in by_users.reasons[0]  # type: ignore[attr-defined]


def test_before_after() -> None:
    before = WindowStats(
        route="payment-status", start=0, end=60, requests=500, status_5xx=190, p95=612.0
    )
    assert compare(before, W) == (
        "payment-status: error rate 38.0 % → 0.2 %, p95 612 → 41 ms, 500 → 600 calls"
    )
