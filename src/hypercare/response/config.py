"""The ``response:`` section of the configuration file: where notifications go.

::

    response:
      base_url: https://hypercare.example.com   # links in messages; default: the console
      channels:
        - name: ops-hook
          type: webhook
          url: http://127.0.0.1:9999/hook
      rules:
        - match: {priority: [P1]}
          notify: [ops-hook]

Targets written here by the operator are used as written (loopback included). Names that
rules refer to are checked by `reference_errors`, which `hypercare.config` reports with the
file and line of the dangling name.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from hypercare.configtypes import Duration, StrictModel
from hypercare.response.oncall import describe_gap, local_gap

ChannelType = Literal["webhook", "slack", "teams", "email", "pagerduty", "opsgenie"]
CHANNEL_TYPES: tuple[str, ...] = ("webhook", "slack", "teams", "email", "pagerduty", "opsgenie")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
OPSGENIE_ALERTS_URL = "https://api.opsgenie.com/v2/alerts"

# timeline kinds that can notify; `rules.match.events` narrows a rule to some of them
EventKind = Literal["created", "priority", "status", "sla", "escalation", "acknowledged"]
EVENT_KINDS: tuple[str, ...] = (
    "created",
    "priority",
    "status",
    "sla",
    "escalation",
    "acknowledged",
)


class ChannelConfig(StrictModel):
    """One destination. Which settings apply depends on `type`:

    - webhook / slack / teams: `url` (webhook also `secret`, the HMAC key);
    - pagerduty: `routing_key` (integration key), `url` to override the Events v2 endpoint;
    - opsgenie: `api_key`, `url` to override the alerts endpoint;
    - email: `smtp_host`, `smtp_port`, `smtp_tls`, `username`, `password`, `sender`, `to`.
    """

    name: str = Field(pattern=_NAME)
    type: ChannelType
    url: str | None = Field(default=None, max_length=2000)
    secret: str | None = Field(default=None, min_length=16, max_length=200)
    routing_key: str | None = Field(default=None, max_length=200)
    api_key: str | None = Field(default=None, max_length=200)
    smtp_host: str | None = Field(default=None, max_length=255)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=200)
    sender: str | None = Field(default=None, max_length=300)
    to: list[str] = Field(default_factory=list, max_length=100)
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _settings(self) -> ChannelConfig:
        if self.type in ("webhook", "slack", "teams") and not self.url:
            raise ValueError(f"a {self.type} channel needs `url`")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"`url` must be an http:// or https:// URL (got {self.url!r})")
        if self.type == "pagerduty" and not self.routing_key:
            raise ValueError("a pagerduty channel needs `routing_key` (the integration key)")
        if self.type == "opsgenie" and not self.api_key:
            raise ValueError("an opsgenie channel needs `api_key`")
        if self.type == "email":
            missing = [k for k in ("smtp_host", "sender") if not getattr(self, k)]
            if not self.to:
                missing.append("to")
            if missing:
                raise ValueError(f"an email channel needs {', '.join(missing)}")
        if self.secret is not None and self.type != "webhook":
            raise ValueError("`secret` is only for webhook channels")
        return self

    @property
    def endpoint(self) -> str | None:
        if self.url:
            return self.url
        if self.type == "pagerduty":
            return PAGERDUTY_EVENTS_URL
        if self.type == "opsgenie":
            return OPSGENIE_ALERTS_URL
        return None


class RuleMatch(StrictModel):
    """Every given key must match (empty: anything). Lists mean "one of"."""

    priority: list[str] = Field(default_factory=list, max_length=20)
    component: list[str] = Field(default_factory=list, max_length=100)
    route: list[str] = Field(default_factory=list, max_length=100)
    labels: list[str] = Field(default_factory=list, max_length=50)
    source: list[str] = Field(default_factory=list, max_length=50)
    events: list[EventKind] = Field(default_factory=list)


class RuleConfig(StrictModel):
    match: RuleMatch = Field(default_factory=RuleMatch)
    notify: list[str] = Field(min_length=1, max_length=50)
    # later rules are still applied unless a matching rule says stop
    stop: bool = False


class DispatchConfig(StrictModel):
    max_attempts: int = Field(default=6, ge=1, le=50, description="then the delivery is dead")
    backoff: Duration = Field(default=timedelta(seconds=2), description="first retry delay")
    max_backoff: Duration = timedelta(minutes=10)
    poll_interval: Duration = timedelta(milliseconds=200)
    # sends talking to receivers at once, and the most connections open
    concurrency: int = Field(default=64, ge=1, le=512)
    # entries read per outbox pass; deliveries claimed at a time by the dispatcher
    batch: int = Field(default=500, ge=1, le=5000)
    # a hole in the timeline ids (a transaction still open on PostgreSQL) is waited for
    # this long before the outbox moves past it (a rolled-back id never appears)
    gap_wait: Duration = timedelta(seconds=30)


# --- people, schedules, escalation policies (part B) ------------------------------------

_WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name like Europe/Paris or America/New_York)"
        ) from None
    return value


def _clock(value: object) -> str:
    """``"09:00"`` as written; YAML 1.1 reads an unquoted ``18:00`` as the number 1080
    (base 60), which is taken back to ``18:00``."""
    if isinstance(value, int) and not isinstance(value, bool) and 60 <= value < 24 * 60:
        return f"{value // 60:02d}:{value % 60:02d}"
    if isinstance(value, str) and re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d|24:00", value.strip()):
        return value.strip()
    raise ValueError(f"invalid time of day {value!r} (write it as 'HH:MM', e.g. '09:00')")


TimeZoneName = Annotated[str, AfterValidator(_zone)]
Clock = Annotated[str, BeforeValidator(_clock)]


def clock_time(value: str) -> time:
    hours, minutes = value.split(":")
    return time(0) if hours == "24" else time(int(hours), int(minutes))


class ContactConfig(StrictModel):
    """One way to reach a person. `channel` names a configured channel of the same type
    that carries the message (a Slack or Teams webhook; for email the SMTP settings);
    `target` is who it is for there (``@alice``, ``U024BE7LH``, an address); a webhook
    contact may give its own `url` instead of a channel."""

    type: Literal["email", "slack", "teams", "webhook"]
    channel: str | None = Field(default=None, pattern=_NAME)
    target: str | None = Field(default=None, max_length=300)
    url: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _settings(self) -> ContactConfig:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"`url` must be an http:// or https:// URL (got {self.url!r})")
        if self.url and self.type != "webhook":
            raise ValueError("only a webhook contact takes `url`; others name a `channel`")
        if self.type == "webhook" and not (self.url or self.channel):
            raise ValueError("a webhook contact needs `url` or `channel`")
        if self.type in ("slack", "teams") and not self.channel:
            raise ValueError(f"a {self.type} contact needs `channel` (a {self.type} channel)")
        return self


class QuietHoursConfig(StrictModel):
    """Local hours (the person's zone) when only P1 reaches this person."""

    start: Clock = Field(alias="from")
    end: Clock = Field(alias="to")


class PersonConfig(StrictModel):
    name: str = Field(pattern=_NAME, description="the id used in schedules, policies, rules")
    full_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=300, pattern=r"^[^@\s]+@[^@\s]+$")
    time_zone: TimeZoneName = "UTC"
    contacts: list[ContactConfig] = Field(default_factory=list, max_length=20)
    # name of an API token (`hypercare token create --name ...`) that acts as this person
    token: str | None = Field(default=None, max_length=100)
    quiet_hours: QuietHoursConfig | None = None


class RestrictionConfig(StrictModel):
    """A layer is on duty only inside these local windows (the schedule's zone)."""

    days: list[str] = Field(default_factory=lambda: list(_WEEKDAY_NAMES), min_length=1)
    start: Clock = Field(alias="from")
    end: Clock = Field(alias="to")

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        out = []
        for d in value:
            key = d.strip().lower()[:3]
            if key not in _WEEKDAY_NAMES:
                raise ValueError(f"unknown day {d!r} (use {', '.join(_WEEKDAY_NAMES)})")
            out.append(key)
        return out

    @model_validator(mode="after")
    def _span(self) -> RestrictionConfig:
        if self.start == self.end:
            raise ValueError("`from` and `to` are equal (write 00:00 to 24:00 for a whole day)")
        if self.start == "24:00":
            raise ValueError("`from` must be before 24:00")
        return self


class LayerConfig(StrictModel):
    """Members take turns in order. ``rotation: daily`` and ``weekly`` hand off at
    `handoff` local time (weekly: on the weekday of `start`); ``rotation: hours`` with
    ``turn: 12h`` hands off every N hours of the local clock from `start` + `handoff`."""

    name: str | None = Field(default=None, max_length=80)
    rotation: Literal["daily", "weekly", "hours"] = "weekly"
    turn: Duration | None = None
    handoff: Clock = "09:00"
    start: date
    members: list[str] = Field(min_length=1, max_length=200)
    restrictions: list[RestrictionConfig] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _turn(self) -> LayerConfig:
        if self.rotation == "hours":
            if self.turn is None:
                raise ValueError("rotation: hours needs `turn`, e.g. turn: 12h")
            secs = self.turn.total_seconds()
            if secs < 3600 or secs % 3600 or secs > 24 * 3600 * 28:
                raise ValueError("`turn` must be a whole number of hours, 1h to 28 days")
        elif self.turn is not None:
            raise ValueError(f"`turn` is only for rotation: hours (this one is {self.rotation})")
        if self.handoff == "24:00":
            raise ValueError("`handoff` must be before 24:00")
        return self

    @property
    def length(self) -> timedelta:
        if self.rotation == "daily":
            return timedelta(days=1)
        if self.rotation == "weekly":
            return timedelta(days=7)
        return self.turn or timedelta(hours=24)


class OverrideConfig(StrictModel):
    """Somebody else on call from `start` to `end`, written in the file (the API and the
    console add more). A time without an offset is read in the schedule's time zone."""

    person: str
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _span(self) -> OverrideConfig:
        if (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError("give both `start` and `end` an offset (e.g. +02:00), or neither")
        if self.end <= self.start:
            raise ValueError("`end` must be after `start`")
        if self.end - self.start > timedelta(days=90):
            raise ValueError("an override may last at most 90 days")
        return self


class ScheduleConfig(StrictModel):
    name: str = Field(pattern=_NAME)
    time_zone: TimeZoneName
    description: str | None = Field(default=None, max_length=500)
    # later layers sit on top of earlier ones where they have somebody
    layers: list[LayerConfig] = Field(min_length=1, max_length=20)
    overrides: list[OverrideConfig] = Field(default_factory=list, max_length=500)

    def override_spans(self) -> list[tuple[str, datetime, datetime]]:
        """The file's overrides as (person, start, end) in UTC."""
        zone = ZoneInfo(self.time_zone)
        out = []
        for o in self.overrides:
            start = o.start if o.start.tzinfo else o.start.replace(tzinfo=zone)
            end = o.end if o.end.tzinfo else o.end.replace(tzinfo=zone)
            out.append((o.person, start.astimezone(UTC), end.astimezone(UTC)))
        return out


class StepConfig(StrictModel):
    """Notify people, schedules (whoever is on call then) and channels, then wait."""

    notify: list[str] = Field(default_factory=list, max_length=50)
    wait: Duration = timedelta(minutes=10)


class PolicyConfig(StrictModel):
    """Ordered steps, run `repeat` times in all, stopped by acknowledgement. `levels`
    names the triage matrix's escalation path entries (``24/7 on-call engineering``) or
    priorities (``P1``) this policy serves."""

    name: str = Field(pattern=_NAME)
    levels: list[str] = Field(default_factory=list, max_length=50)
    steps: list[StepConfig] = Field(default_factory=list, max_length=20)
    repeat: int = Field(default=1, ge=1, le=10)


class ImpactGateConfig(StrictModel):
    """Impact-confirmed paging: an issue opened by a system alert from one of `sources`
    pages on-call only when the gateway's live telemetry shows user impact on its route (or
    its component's routes) over the last `window`; otherwise `notify` (the team channels)
    hears about it, with the numbers that decided, and nobody is paged."""

    sources: list[str] = Field(
        default_factory=lambda: ["alertmanager", "grafana", "datadog", "cloudwatch"],
        max_length=50,
    )
    notify: list[str] = Field(min_length=1, max_length=20)
    window: Duration = timedelta(minutes=5)
    # fewer calls than this in the window: no evidence either way, so on-call is paged
    min_requests: int = Field(default=20, ge=1, le=1_000_000)
    error_rate: float = Field(default=0.02, gt=0, le=1, description="failed share = impact")
    p95_ms: float | None = Field(default=2000, gt=0, description="p95 at or above = impact")
    # an alert found without impact is checked again while open and unowned, this long
    # after that check; impact then pages on-call (once). 0s: never re-checked
    recheck_for: Duration = timedelta(hours=1)


class StormConfig(StrictModel):
    """More than `issues` new issues within `within`: the channel messages about new issues
    are gathered into one per channel (sent `gather` after the first), instead of one each;
    so are the escalation pages (one grouped page per channel or contact)."""

    issues: int = Field(default=10, ge=1, le=10_000)
    within: Duration = timedelta(seconds=60)
    gather: Duration = timedelta(seconds=5)


class ResponseConfig(StrictModel):
    base_url: str | None = Field(
        default=None,
        max_length=500,
        description="the console's external URL for links in messages; default: its listen address",
    )
    channels: list[ChannelConfig] = Field(default_factory=list, max_length=200)
    rules: list[RuleConfig] = Field(default_factory=list, max_length=500)
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig)
    ack_link_ttl: Duration = Field(default=timedelta(hours=24), description="signed link life")
    # key for ack-link signatures and for encrypting generated webhook secrets; empty: one is
    # generated and kept in the store (write ${HYPERCARE_RESPONSE_KEY} to keep it out of it)
    signing_key: str | None = Field(default=None, min_length=32, max_length=200)
    # hosts or networks that URLs arriving through the API may resolve to even when private
    allow_private: list[str] = Field(default_factory=list, max_length=100)
    people: list[PersonConfig] = Field(default_factory=list, max_length=1000)
    schedules: list[ScheduleConfig] = Field(default_factory=list, max_length=200)
    policies: list[PolicyConfig] = Field(default_factory=list, max_length=200)
    impact_gate: ImpactGateConfig | None = None
    storm: StormConfig | None = None

    @model_validator(mode="after")
    def _unique(self) -> ResponseConfig:
        names = [c.name for c in self.channels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"channel names must be unique; repeated: {', '.join(dupes)}")
        # one namespace for everything a rule or a policy step can name
        every = names + [
            x.name for group in (self.people, self.schedules, self.policies) for x in group
        ]
        dupes = sorted({n for n in every if every.count(n) > 1})
        if dupes:
            raise ValueError(
                "names of channels, people, schedules and policies share one namespace and "
                f"must be unique; repeated: {', '.join(dupes)}"
            )
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https:// ({self.base_url!r})")
        return self

    def channel(self, name: str) -> ChannelConfig | None:
        """A configured channel, or a person's contact method as one (``ann/1``: the
        second contact of ann), which is how deliveries to people are addressed."""
        for c in self.channels:
            if c.name == name:
                return c
        # ``mail>12``: channel mail, addressed to the one recipient in the delivery's
        # message (`to`), e.g. a reporter's "fixed" message (hypercare.comms)
        base, arrow, _ = name.partition(">")
        if arrow:
            return next((c for c in self.channels if c.name == base), None)
        person_name, slash, index = name.partition("/")
        person = self.person(person_name) if slash and index.isdigit() else None
        if person is None or int(index) >= len(person.contacts):
            return None
        return self.contact_channel(person, int(index))

    def contact_channel(self, person: PersonConfig, index: int) -> ChannelConfig | None:
        contact = person.contacts[index]
        name = f"{person.name}/{index}"
        if contact.type == "webhook" and contact.url:
            return ChannelConfig(name="contact", type="webhook", url=contact.url).model_copy(
                update={"name": name}
            )
        base = None
        if contact.channel:
            base = next((c for c in self.channels if c.name == contact.channel), None)
        elif contact.type == "email":
            base = next((c for c in self.channels if c.type == "email"), None)
        if base is None:
            return None
        update: dict[str, object] = {"name": name}
        if contact.type == "email":
            address = contact.target or person.email
            if not address:
                return None
            update["to"] = [address]
        return base.model_copy(update=update)

    def target_names(self) -> dict[str, str]:
        """Every name a rule may notify, with what it is."""
        out = {c.name: "channel" for c in self.channels}
        out.update({p.name: "person" for p in self.people})
        out.update({s.name: "schedule" for s in self.schedules})
        out.update({p.name: "policy" for p in self.policies})
        return out

    def person(self, name: str) -> PersonConfig | None:
        return next((p for p in self.people if p.name == name), None)

    def person_for_token(self, token_name: str) -> PersonConfig | None:
        """The person whose `token:` names this API token (acts as them)."""
        return next((p for p in self.people if p.token and p.token == token_name), None)

    def schedule(self, name: str) -> ScheduleConfig | None:
        return next((s for s in self.schedules if s.name == name), None)

    def policy(self, name: str) -> PolicyConfig | None:
        return next((p for p in self.policies if p.name == name), None)


def reference_errors(
    config: ResponseConfig, priorities: list[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Dangling names, each with its location in the file (``response.rules[0].notify[1]``)."""
    errors: list[tuple[tuple[str | int, ...], str]] = []
    targets = config.target_names()
    for i, rule in enumerate(config.rules):
        for j, name in enumerate(rule.notify):
            if name not in targets:
                known = ", ".join(sorted(targets)) or "none defined"
                errors.append(
                    (
                        ("response", "rules", i, "notify", j),
                        f"unknown channel {name!r} (no channel, person, schedule or policy has "
                        f"that name; known: {known})",
                    )
                )
        for j, p in enumerate(rule.match.priority):
            if p not in priorities:
                errors.append(
                    (
                        ("response", "rules", i, "match", "priority", j),
                        f"unknown priority {p!r} (the matrix has {', '.join(priorities)})",
                    )
                )
    errors.extend(_oncall_errors(config, priorities))
    return errors


def _oncall_errors(
    config: ResponseConfig, priorities: list[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Dangling names in people, schedules and policies, and schedules whose first handoff
    is a local time that never happens."""
    errors: list[tuple[tuple[str | int, ...], str]] = []
    people = {p.name for p in config.people}
    known_people = ", ".join(sorted(people)) or "none defined"
    channels = {c.name: c.type for c in config.channels}
    for i, person in enumerate(config.people):
        for j, contact in enumerate(person.contacts):
            if contact.channel is None:
                continue
            kind = channels.get(contact.channel)
            where: tuple[str | int, ...] = ("response", "people", i, "contacts", j, "channel")
            if kind is None:
                known = ", ".join(sorted(channels)) or "none defined"
                errors.append((where, f"unknown channel {contact.channel!r} (known: {known})"))
            elif kind != contact.type:
                errors.append(
                    (where, f"channel {contact.channel!r} is a {kind} channel, not {contact.type}")
                )
    for i, sch in enumerate(config.schedules):
        zone = ZoneInfo(sch.time_zone)
        for j, layer in enumerate(sch.layers):
            for k, member in enumerate(layer.members):
                if member not in people:
                    errors.append(
                        (
                            ("response", "schedules", i, "layers", j, "members", k),
                            f"unknown person {member!r} (known: {known_people})",
                        )
                    )
            first = datetime.combine(layer.start, clock_time(layer.handoff))
            if local_gap(first, zone):
                errors.append(
                    (("response", "schedules", i, "layers", j, "start"), describe_gap(first, zone))
                )
        for j, override in enumerate(sch.overrides):
            if override.person not in people:
                errors.append(
                    (
                        ("response", "schedules", i, "overrides", j, "person"),
                        f"unknown person {override.person!r} (known: {known_people})",
                    )
                )
            for field, at in (("start", override.start), ("end", override.end)):
                if at.tzinfo is None and local_gap(at, zone):
                    errors.append(
                        (
                            ("response", "schedules", i, "overrides", j, field),
                            describe_gap(at, zone),
                        )
                    )
    tokens: dict[str, str] = {}
    for i, person in enumerate(config.people):
        if person.token is None:
            continue
        if person.token in tokens:
            errors.append(
                (
                    ("response", "people", i, "token"),
                    f"token {person.token!r} already acts as {tokens[person.token]!r}; "
                    "one token stands for one person",
                )
            )
        tokens.setdefault(person.token, person.name)
    targets = config.target_names()
    if config.impact_gate is not None:
        for j, name in enumerate(config.impact_gate.notify):
            if targets.get(name) != "channel":
                known = ", ".join(sorted(c.name for c in config.channels)) or "none defined"
                errors.append(
                    (
                        ("response", "impact_gate", "notify", j),
                        f"unknown channel {name!r} (known: {known})",
                    )
                )
    for i, policy in enumerate(config.policies):
        for j, step in enumerate(policy.steps):
            for k, name in enumerate(step.notify):
                if targets.get(name) in (None, "policy"):
                    known = ", ".join(sorted(n for n, t in targets.items() if t != "policy"))
                    errors.append(
                        (
                            ("response", "policies", i, "steps", j, "notify", k),
                            f"unknown person, schedule or channel {name!r} "
                            f"(known: {known or 'none defined'})",
                        )
                    )
    return errors
