"""The handover draft stays within what a Handover holds, however many issues are open."""

from __future__ import annotations

from hypercare.feedback.handover import MAX_LINES, capped


def test_capped_keeps_the_first_lines_and_counts_the_rest() -> None:
    lines = [f"#{n}" for n in range(500)]
    out = capped(lines)
    assert len(out) == MAX_LINES and out[:3] == ["#0", "#1", "#2"]
    assert out[-1] == f"… and {500 - MAX_LINES + 1} more (see the triage queue)"
    assert capped(lines[:MAX_LINES]) == lines[:MAX_LINES]
