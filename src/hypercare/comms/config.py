"""The ``comms:`` section: messages to the people outside the team.

```yaml
comms:
  fixed:                       # the "fixed" message to reporters of an issue's feedback
    channel: mail              # an email channel of response.channels (SMTP server, sender)
    on: [resolved, verified]   # the statuses that send it (each reporter gets it once)
    subject: "Fixed: {{ title }}"
    body: |
      Hello, you told us "{{ report }}" on {{ reported_at }}. It is fixed now.
```
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from hypercare.comms.rules import FIXED_VARIABLES
from hypercare.configtypes import Duration, StrictModel
from hypercare.status.rules import TemplateError, check_template

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
FixingStatus = Literal["resolved", "verified"]
FIXING: tuple[FixingStatus, ...] = ("resolved", "verified")
DEFAULT_SUBJECT = "Fixed: {{ title }}"
DEFAULT_BODY = """Hello,

you told us about a problem on {{ reported_at }}: "{{ report }}".

It is fixed now ({{ title }}). Thank you for reporting it; it helped us find it sooner.
"""


class FixedMessageConfig(StrictModel):
    """A templated "fixed" message to each reporter (who left an email address) of the
    user feedback linked to an issue, when the issue reaches one of `on`."""

    channel: str = Field(min_length=1, max_length=80)
    on: list[FixingStatus] = Field(default_factory=lambda: [*FIXING], min_length=1)
    subject: str = Field(default=DEFAULT_SUBJECT, max_length=300)
    body: str = Field(default=DEFAULT_BODY, max_length=20_000)

    @field_validator("subject", "body")
    @classmethod
    def _template(cls, text: str) -> str:
        try:
            check_template(text, FIXED_VARIABLES)
        except TemplateError as exc:
            raise ValueError(f"template {exc}") from None
        return text


class DigestConfig(StrictModel):
    """The stakeholder digest: its title, period and the time zone it is written in."""

    title: str = Field(default="Hypercare digest", min_length=1, max_length=200)
    period: Duration = timedelta(hours=24)
    timezone: str = Field(default="UTC", max_length=64)
    # sending: at these local times (HH:MM in `timezone`) and, with `at_shift_change`, when
    # the person on call of a schedule changes; to these response channels
    send_at: list[str] = Field(default_factory=list, max_length=24)
    at_shift_change: bool = False
    channels: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("send_at")
    @classmethod
    def _times(cls, values: list[str]) -> list[str]:
        for v in values:
            if not _HHMM.match(v):
                raise ValueError(f"send_at: {v!r} is not a time of day HH:MM such as 09:00")
        return values

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
            ) from None
        return name

    @field_validator("period")
    @classmethod
    def _period(cls, value: timedelta) -> timedelta:
        if not timedelta(hours=1) <= value <= timedelta(days=31):
            raise ValueError("period must be between 1h and 31d")
        return value


class SubscribersConfig(StrictModel):
    """People and systems subscribing to the status page: emails confirmed through a signed
    link (valid `confirm_ttl`), webhooks (their URLs pass the URL guard, allow-list
    `response.allow_private`). The subscribe form allows `per_minute` posts per client."""

    enabled: bool = False
    channel: str | None = Field(default=None, max_length=80, description="an email channel")
    confirm_ttl: Duration = timedelta(hours=48)
    per_minute: int = Field(default=10, ge=1, le=10_000)
    notice: Duration = timedelta(hours=1)  # maintenance: told this long before it starts
    # where links in messages point (default: response.base_url, else the console)
    public_url: str | None = Field(default=None, max_length=300)


class CommsConfig(StrictModel):
    fixed: FixedMessageConfig | None = None
    subscribers: SubscribersConfig = Field(default_factory=SubscribersConfig)
    digest: DigestConfig = Field(default_factory=DigestConfig)
