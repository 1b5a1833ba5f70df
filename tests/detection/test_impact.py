import pytest

from hypercare.detection.impact import Impact, ImpactTable, suggest_priority

TABLE = ImpactTable()


@pytest.mark.parametrize(
    ("impact", "expected"),
    [
        (Impact(), "P4"),
        (Impact(total_failure=True), "P1"),
        (Impact(failing_share=0.6), "P1"),
        (Impact(failing_share=0.2), "P2"),
        (Impact(failing_share=0.02), "P3"),
        (Impact(failing_share=0.001), "P4"),
        (Impact(failing_share=0.2, criticality="critical"), "P1"),
        (Impact(failing_share=0.01, criticality="critical"), "P3"),  # not failing enough
        (Impact(distinct_users=30), "P1"),
        (Impact(distinct_users=6), "P2"),
        (Impact(source_severity="warning"), "P3"),
    ],
)
def test_most_urgent_factor_wins(impact: Impact, expected: str) -> None:
    level, reasons = suggest_priority(impact, TABLE)
    assert level == expected
    assert bool(reasons) == (expected != "P4")


def test_reasons_name_the_factor() -> None:
    _, reasons = suggest_priority(Impact(failing_share=0.3, criticality="high"), TABLE)
    assert reasons == ["30% of calls failing", "route criticality high"]
