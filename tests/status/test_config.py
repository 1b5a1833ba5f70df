"""The `status:` section: the minimal form, the documented example, and errors that name
the file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hypercare.config import parse_config
from hypercare.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_minimal_section() -> None:
    cfg = parse_config("status: {components: [{name: Payments, routes: [payment-status]}]}")
    (c,) = cfg.status.components
    assert c.name == "Payments" and c.routes == ["payment-status"]
    assert cfg.status.thresholds.major.error_rate == 0.5


def test_documented_example_is_valid() -> None:
    text = DOCS.read_text()
    section = text[text.index("## status") :]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        parse_config(block, "docs/configuration.md")


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        (
            "status:\n  templates:\n    outage: |\n      fine\n      {{ compnent }}\n",
            "line 2: unknown variable 'compnent'",
        ),
        ("status:\n  templates:\n    outage: '{% if x %}'\n", "line 1"),
        ("status:\n  templates:\n    party: hi\n", "unknown scenario"),
        ("status:\n  components:\n    - {name: A}\n", "needs `routes`"),
        ("status:\n  page: {colours: {major: red}}\n", "#rrggbb"),
        (
            "status:\n  components:\n    - {name: A, routes: [a]}\n    - {name: A, routes: [b]}\n",
            "named twice",
        ),
    ],
)
def test_errors_name_the_line(yaml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(yaml, "hypercare.yaml")
    assert expected in str(err.value) and "hypercare.yaml:" in str(err.value)
