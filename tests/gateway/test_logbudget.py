"""The security log's line budget: a burst is logged in part, then counted in one line."""

from hypercare.gateway.logbudget import LogBudget


def test_a_burst_logs_the_first_lines_then_reports_what_it_held_back() -> None:
    budget = LogBudget(per_window=3, window=10.0)
    decisions = [budget.take("pay\0invalid", 100.0 + i * 0.01) for i in range(10)]
    assert [emit for emit, _ in decisions] == [True] * 3 + [False] * 7
    assert all(suppressed == 0 for _, suppressed in decisions)
    # the next window's first event carries the count of the previous one, once
    assert budget.take("pay\0invalid", 110.5) == (True, 7)
    assert budget.take("pay\0invalid", 110.6) == (True, 0)


def test_keys_have_their_own_budget() -> None:
    budget = LogBudget(per_window=1, window=10.0)
    assert budget.take("a", 0.0) == (True, 0)
    assert budget.take("a", 1.0) == (False, 0)
    assert budget.take("b", 1.0) == (True, 0)


def test_a_quiet_key_starts_a_fresh_window_without_a_summary() -> None:
    budget = LogBudget(per_window=2, window=10.0)
    assert budget.take("a", 0.0) == (True, 0)
    assert budget.take("a", 50.0) == (True, 0)
