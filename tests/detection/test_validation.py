from hypercare.detection.rules import WindowStats
from hypercare.detection.validation import compare, judge

W = WindowStats(route="payment-status", start=0, end=60, requests=600, status_5xx=1, p95=41.0)


def test_watching_until_the_window_passes_then_verified_with_numbers() -> None:
    assert judge(elapsed=30, window=60, firing=[], new_user_reports=0, after=[W]).outcome == (
        "watching"
    )
    done = judge(elapsed=61, window=60, firing=[], new_user_reports=0, after=[W])
    assert done.outcome == "verified"
    assert done.reasons == ("payment-status: 600 calls, error rate 0.2 %, p95 41 ms",)


def test_regression_by_rule_or_by_users() -> None:
    by_rule = judge(elapsed=5, window=60, firing=["5xx-rate"], new_user_reports=0, after=[W])
    assert (by_rule.outcome, by_rule.reasons) == ("regressed", ("rule 5xx-rate fired again",))
    by_users = judge(elapsed=5, window=60, firing=[], new_user_reports=2, after=[W])
    assert by_users.outcome == "regressed"
    assert "2 new user report(s)" in by_users.reasons[0]


def test_before_after() -> None:
    before = WindowStats(
        route="payment-status", start=0, end=60, requests=500, status_5xx=190, p95=612.0
    )
    assert compare(before, W) == (
        "payment-status: error rate 38.0 % → 0.2 %, p95 612 → 41 ms, 500 → 600 calls"
    )
