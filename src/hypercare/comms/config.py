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

from typing import Literal

from pydantic import Field, field_validator

from hypercare.comms.rules import FIXED_VARIABLES
from hypercare.configtypes import StrictModel
from hypercare.status.rules import TemplateError, check_template

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


class CommsConfig(StrictModel):
    fixed: FixedMessageConfig | None = None
