"""The `detection:` section: per-route overrides and their checks."""

from __future__ import annotations

import pytest

from hypercare.config import parse_config
from hypercare.demo.config import demo_yaml
from hypercare.detection.engine import Detector
from hypercare.detection.live import LiveWindows
from hypercare.detection.rules import RouteOverride
from hypercare.errors import ConfigError

PORTS = {"catalog": 9101, "orders": 9102, "payments": 9103}


def test_route_overrides_reach_the_detector() -> None:
    cfg = parse_config(
        demo_yaml(
            PORTS,
            "detection:\n"
            "  routes:\n"
            "    catalog-search:\n"
            "      thresholds: {p95-above-bound: 2500}\n"
            "      disabled: [traffic-drop]\n"
            "    payment-create:\n"
            "      baseline_from: payment-status\n"
            "  rules:\n"
            "    - {name: login-401, metric: auth_failure_share, threshold: 0.3,\n"
            "       min_events: 10, category: security}\n",
        ),
        "hc.yaml",
    )
    overrides = cfg.detection.overrides()
    assert overrides["payment-create"] == RouteOverride(baseline_from="payment-status")
    detector = Detector(cfg.detection.all_rules(), LiveWindows(), overrides=overrides)
    rules = {r.name: r for r in detector.rules_for("catalog-search")}
    assert rules["p95-above-bound"].threshold == 2500
    assert "traffic-drop" not in rules
    assert rules["login-401"].category == "security" and rules["login-401"].min_events == 10
    others = {r.name: r for r in detector.rules_for("catalog-item")}
    assert others["p95-above-bound"].threshold == 1000 and "traffic-drop" in others


@pytest.mark.parametrize(
    ("routes", "named"),
    [
        ("    catalog-serch:\n      disabled: [traffic-drop]\n", "'catalog-serch'"),
        ("    catalog-search:\n      baseline_from: catalog-v0\n", "'catalog-v0'"),
    ],
)
def test_unknown_routes_in_overrides_are_refused_by_name(routes: str, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(demo_yaml(PORTS, "detection:\n  routes:\n" + routes), "hc.yaml")
    assert named in err.value.message
    assert "is not a route in gateway.routes" in err.value.message
    assert err.value.message.startswith("hc.yaml")
