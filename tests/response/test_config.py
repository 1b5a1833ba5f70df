import subprocess
import sys
from pathlib import Path

import pytest

from hypercare.config import parse_config
from hypercare.errors import ConfigError

MINIMAL = """
response:
  channels:
    - name: ops-hook
      type: webhook
      url: http://127.0.0.1:9999/hook
  rules:
    - match: {priority: [P1]}
      notify: [ops-hook]
"""


def test_minimal_file_from_the_issue_is_valid() -> None:
    cfg = parse_config(MINIMAL, "h.yaml")
    hook = cfg.response.channel("ops-hook")
    assert hook is not None and hook.type == "webhook"
    assert hook.url == "http://127.0.0.1:9999/hook"
    assert cfg.response.rules[0].match.priority == ["P1"]


def test_unknown_channel_names_file_and_line() -> None:
    text = MINIMAL.replace("notify: [ops-hook]", "notify:\n        - ops-hook\n        - pager")
    with pytest.raises(ConfigError) as err:
        parse_config(text, "h.yaml")
    message = str(err.value)
    assert message.startswith("h.yaml:11: response.rules[0].notify[1]: unknown channel 'pager'")
    assert "known: ops-hook" in message


def test_unknown_priority_in_a_rule_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"h.yaml:8: .*unknown priority 'P7'"):
        parse_config(MINIMAL.replace("[P1]", "[P7]"), "h.yaml")


@pytest.mark.parametrize(
    ("channel", "needs"),
    [
        ("{name: s, type: slack}", "needs `url`"),
        ("{name: p, type: pagerduty}", "routing_key"),
        ("{name: o, type: opsgenie}", "api_key"),
        ("{name: e, type: email, smtp_host: localhost}", "sender, to"),
        ("{name: w, type: webhook, url: 'ftp://x'}", "http:// or https://"),
        ("{name: w, type: carrier-pigeon, url: 'http://x'}", "webhook"),
    ],
)
def test_channel_settings_are_checked(channel: str, needs: str) -> None:
    with pytest.raises(ConfigError, match=rf"h.yaml:3: .*{needs}"):
        parse_config(f"response:\n  channels:\n    - {channel}\n", "h.yaml")


def test_duplicate_channel_names() -> None:
    text = "response:\n  channels:\n    - {name: a, type: slack, url: 'http://x'}\n" * 1
    text += "    - {name: a, type: slack, url: 'http://y'}\n"
    with pytest.raises(ConfigError, match="repeated: a"):
        parse_config(text, "h.yaml")


def test_an_empty_section_is_a_clear_error_not_a_traceback() -> None:
    with pytest.raises(ConfigError, match=r"h.yaml:1: response: .*valid dictionary"):
        parse_config("response:\n", "h.yaml")
    assert parse_config("response: {}\n", "h.yaml").response.channels == []


def test_config_check_names_the_file_and_line_of_an_unknown_channel(tmp_path: Path) -> None:
    path = tmp_path / "hypercare.yaml"
    path.write_text(MINIMAL.replace("notify: [ops-hook]", "notify: [ops-hook, pager]"))
    r = subprocess.run(
        [sys.executable, "-m", "hypercare", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2
    assert f"{path}:9: response.rules[0].notify[1]: unknown channel 'pager'" in r.stderr
    assert "Traceback" not in r.stderr
    path.write_text(MINIMAL)
    ok = subprocess.run(
        [sys.executable, "-m", "hypercare", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
