from datetime import timedelta
from pathlib import Path

import pytest

from hypercare.config import load_config, parse_config
from hypercare.configtypes import parse_duration
from hypercare.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("30s", 30), ("15m", 900), ("4h", 14400), ("1d", 86400), (5, 5)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["soon", "5 years", -1, True, "1.5.2s"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_empty_file_means_defaults() -> None:
    cfg = parse_config("", "x.yaml")
    assert [lv.level for lv in cfg.triage.matrix] == ["P1", "P2", "P3", "P4"]


def test_custom_matrix_with_post_hypercare_target() -> None:
    cfg = parse_config(
        """
triage:
  default_priority: P2
  matrix:
    - {level: P1, name: Critical, target: 30m, escalation: [everyone]}
    - {level: P2, name: Later, target: post-hypercare}
""",
        "x.yaml",
    )
    assert cfg.triage.matrix[0].target == timedelta(minutes=30)
    assert cfg.triage.matrix[1].target is None


def test_unknown_key_names_file_line_and_valid_keys() -> None:
    text = "triage:\n  at_risk_fraction: 0.2\n  matrx: []\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "hc.yaml")
    msg = err.value.message
    assert msg.startswith("hc.yaml:3: triage.matrx: unknown key 'matrx'")
    assert "matrix" in msg and "default_priority" in msg


def test_bad_value_points_at_its_line() -> None:
    text = "triage:\n  matrix:\n    - level: P1\n      name: Critical\n      target: soon\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "hc.yaml")
    assert err.value.message.startswith("hc.yaml:5: triage.matrix[0].target: invalid duration")


def test_missing_required_key() -> None:
    with pytest.raises(
        ConfigError, match=r"hc.yaml:3: triage.matrix\[0\].name: this key is required"
    ):
        parse_config("triage:\n  matrix:\n    - level: P1\n", "hc.yaml")


def test_inconsistent_matrix() -> None:
    with pytest.raises(ConfigError, match="repeated: P1"):
        parse_config(
            "triage:\n  matrix:\n    - {level: P1, name: a}\n    - {level: P1, name: b}\n"
            "  default_priority: P1\n",
            "hc.yaml",
        )
    with pytest.raises(ConfigError, match="default_priority 'P3' is not in the matrix"):
        parse_config("triage:\n  matrix:\n    - {level: P1, name: a}\n", "hc.yaml")


def test_yaml_syntax_error_has_line() -> None:
    with pytest.raises(ConfigError, match=r"hc.yaml:\d: not valid YAML"):
        parse_config("triage:\n  a: [1, 2\n  b: 3\n", "hc.yaml")


def test_duplicate_keys_are_errors() -> None:
    with pytest.raises(ConfigError, match="hc.yaml:3: duplicate key 'triage'"):
        parse_config("triage: {}\n\ntriage: {}\n", "hc.yaml")


def test_env_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HC_TEST_LEVEL_NAME", "Urgent")
    cfg = parse_config(
        "triage:\n  default_priority: P1\n  matrix:\n"
        "    - {level: P1, name: '${HC_TEST_LEVEL_NAME}'}\n"
        "    - {level: P2, name: '${HC_TEST_UNSET:-Later}'}\n",
        "hc.yaml",
    )
    assert [lv.name for lv in cfg.triage.matrix] == ["Urgent", "Later"]
    with pytest.raises(ConfigError, match="hc.yaml:1: environment variable HC_TEST_NOPE"):
        parse_config("triage: {default_priority: '${HC_TEST_NOPE}'}\n", "hc.yaml")


def test_top_level_must_be_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config("- a\n- b\n", "hc.yaml")


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


RUNBOOK_ROUTES = """\
gateway:
  upstreams:
    shop: {targets: ["127.0.0.1:1"]}
  routes:
    - {name: checkout, match: {path: /checkout}, upstream: shop}
external_routes:
  - {name: orders.get, match: {path: /orders/{id}, methods: [GET]}}
review:
  runbooks:
    - name: orders
      title: Orders slow
      body: Look at the orders database.
      routes: [checkout, orders.get, %s]
"""


def test_runbook_routes_may_name_gateway_and_external_routes() -> None:
    cfg = parse_config(RUNBOOK_ROUTES % "checkout", "hc.yaml")
    assert cfg.review.runbooks[0].routes == ["checkout", "orders.get", "checkout"]
    with pytest.raises(ConfigError) as err:
        parse_config(RUNBOOK_ROUTES % "nope", "hc.yaml")
    assert err.value.message.startswith("hc.yaml:13: review.runbooks[0].routes[2]:")
    assert "unknown route 'nope'" in err.value.message and "orders.get" in err.value.message
