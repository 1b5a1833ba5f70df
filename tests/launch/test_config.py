"""Launch configuration errors name the file and line."""

from __future__ import annotations

import pytest

from hypercare.config import parse_config
from hypercare.errors import ConfigError

GATEWAY = """\
gateway:
  upstreams:
    pay: {targets: ['127.0.0.1:9']}
  routes:
    - name: payment-status
      match: {path: /payment/status}
      upstream: pay
      tags: {component: payments}
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(GATEWAY + text, "hc.yaml")
    return caught.value.message


def test_unknown_route_names_the_line() -> None:
    msg = error_of(
        "launches:\n"
        "  - name: l\n"
        "    start: 2026-01-05T09:00:00Z\n"
        "    routes: [payment-status, nope]\n"
    )
    assert msg.startswith("hc.yaml:12: launches[0].routes[1]: unknown route 'nope'")


def test_unknown_component_and_metric_in_criteria() -> None:
    msg = error_of(
        "launches:\n"
        "  - name: l\n"
        "    start: 2026-01-05T09:00:00Z\n"
        "    components: [shipping]\n"
        "    exit_criteria:\n"
        "      - metric: {route: payment-status, metric: joy, max: 1}\n"
    )
    assert "hc.yaml:12: launches[0].components[0]: unknown component 'shipping'" in msg
    assert "launches[0].exit_criteria[0].metric.metric: unknown metric 'joy'" in msg


def test_slo_target_outside_0_100() -> None:
    msg = error_of(
        "launches:\n"
        "  - name: l\n"
        "    start: 2026-01-05T09:00:00Z\n"
        "    slos:\n"
        "      - name: a\n"
        "        route: payment-status\n"
        "        target: 100\n"
    )
    assert "hc.yaml:15: launches[0].slos[0].target: SLO target 100.0 is outside (0, 100)" in msg


def test_slo_met_without_slos_and_a_criterion_with_two_keys() -> None:
    msg = error_of(
        "launches:\n"
        "  - name: l\n"
        "    start: 2026-01-05T09:00:00Z\n"
        "    exit_criteria:\n"
        "      - slo_met: {for: 48h}\n"
    )
    assert "hc.yaml:13: launches[0].exit_criteria[0].slo_met: slo_met needs SLOs" in msg
    msg = error_of(
        "launches:\n"
        "  - name: l\n"
        "    start: 2026-01-05T09:00:00Z\n"
        "    exit_criteria:\n"
        "      - {no_open: [P1], nps: {min: 3}}\n"
    )
    assert "hc.yaml:13:" in msg and "each criterion is one of" in msg


def test_unknown_priority_and_duplicate_launch() -> None:
    msg = error_of(
        "launches:\n"
        "  - name: l\n"
        "    start: 2026-01-05T09:00:00Z\n"
        "    exit_criteria:\n"
        "      - no_open: [P0]\n"
        "  - name: l\n"
        "    start: 2026-01-05T09:00:00Z\n"
    )
    assert "hc.yaml:13: launches[0].exit_criteria[0].no_open[0]: unknown priority 'P0'" in msg
    assert "hc.yaml:14: launches[1].name: launch 'l' is defined twice" in msg


def test_latency_slo_needs_a_threshold_and_the_zone_must_exist() -> None:
    msg = error_of(
        "launches:\n"
        "  - name: l\n"
        "    start: 2026-01-05T09:00:00Z\n"
        "    time_zone: Mars/Olympus\n"
        "    slos:\n"
        "      - {name: a, route: payment-status, kind: latency, target: 99}\n"
    )
    assert "unknown time zone 'Mars/Olympus'" in msg
    assert "a latency SLO needs a threshold" in msg
