"""The feedback section of the config file: the documented example loads; errors point at lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hypercare.config import parse_config
from hypercare.errors import ConfigError

_ONE = (
    "feedback:\n  integrations:\n    - id: x1\n      type: {type}\n      token: 0123456789abcdef\n"
)
DOCS = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_documented_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    text = DOCS.read_text()
    section = text[text.index("## feedback") :]
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example
    for name in ("PROM_HOOK_TOKEN", "SENTRY_HOOK_TOKEN", "SNS_HOOK_TOKEN", "CHECKER_TOKEN"):
        monkeypatch.setenv(name, f"{name.lower()}-0123456789abcdef")
    monkeypatch.setenv("SENTRY_CLIENT_SECRET", "s3cret")
    cfg = parse_config(example.group(1), "configuration.md").feedback
    assert [i.id for i in cfg.integrations] == ["prom", "sentry", "aws", "status-checker"]
    assert cfg.integrations[0].token == "prom_hook_token-0123456789abcdef"
    assert cfg.integrations[3].mapping is not None and cfg.integrations[3].mapping.items == "checks"
    assert cfg.widget_keys[0].origins == ["https://shop.example.com"]
    assert cfg.priorities["feature"] == {"*": "P4"}


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        (_ONE.format(type="webhook"), "needs a 'mapping'"),
        (_ONE.format(type="nagios"), "type"),
        ("feedback:\n  widget_keys:\n    - key: nope\n      origins: [http://a]\n", "key"),
        ("feedback:\n  widget_rate_limit: 0\n", "widget_rate_limit"),
        (_ONE.format(type="cloudwatch") + "      sns_certificate: nope\n", "not a PEM certificate"),
        ("feedback:\n  integration: []\n", "unknown key 'integration'"),
    ],
)
def test_invalid_feedback_config_names_the_problem(yaml_text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(yaml_text, "hc.yaml")
    assert needle in err.value.message and "hc.yaml:" in err.value.message
