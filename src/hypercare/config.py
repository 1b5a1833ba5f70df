"""The one YAML configuration file, validated by pydantic with errors that point at lines.

`load_config(path)` reads the file, interpolates ``${ENV}`` references, validates it against
`HypercareConfig` and raises `ConfigError` whose message names the file, the line, the
offending key and what would be valid, e.g.::

    hypercare.yaml:12: triage.matrix[0].target: invalid duration 'soon'
      (use a number with a unit: 30s, 15m, 4h, 1d, or 'post-hypercare')
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from hypercare.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_duration(value: object) -> timedelta:
    """Turn ``"30s"``, ``"15m"``, ``"4h"``, ``"1d"``, ``"250ms"`` or seconds into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r} (use 30s, 15m, 4h or 1d)")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return timedelta(seconds=value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError(
        f"invalid duration {value!r} (use a number with a unit: 250ms, 30s, 15m, 4h, 1d)"
    )


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class StrictModel(BaseModel):
    """Base for configuration sections: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _sla_target(value: object) -> timedelta | None:
    if value is None or value in ("post-hypercare", "none"):
        return None
    return parse_duration(value)


class PriorityLevel(StrictModel):
    level: str = Field(pattern=r"^P[1-9]$", description="P1 (most urgent) to P9")
    name: str
    description: str = ""
    impact: str = ""
    # null or 'post-hypercare' means "no SLA during the hypercare period"
    target: Annotated[timedelta | None, BeforeValidator(_sla_target)] = None
    escalation: list[str] = Field(default_factory=list)


DEFAULT_MATRIX: tuple[PriorityLevel, ...] = (
    PriorityLevel(
        level="P1",
        name="Critical",
        description="System down or core functionality unusable",
        impact="Major disruption, financial loss, widespread impact",
        target=timedelta(hours=1),
        escalation=[
            "all hypercare leads",
            "executive team",
            "24/7 on-call engineering",
        ],
    ),
    PriorityLevel(
        level="P2",
        name="High",
        description="Major feature impaired, significant degradation, data-integrity risk",
        impact="Many users, noticeable business impact",
        target=timedelta(hours=4),
        escalation=["team leads", "senior engineers", "product manager"],
    ),
    PriorityLevel(
        level="P3",
        name="Medium",
        description="Minor feature issue, cosmetic bug, minor hiccups",
        impact="Limited users, minor inconvenience",
        target=timedelta(hours=24),
        escalation=["assigned engineering team", "support lead"],
    ),
    PriorityLevel(
        level="P4",
        name="Low",
        description="Typos, minor UI glitches, enhancement requests",
        impact="Minimal",
        target=None,
        escalation=["backlog"],
    ),
)


class TriageConfig(StrictModel):
    matrix: list[PriorityLevel] = Field(default_factory=lambda: list(DEFAULT_MATRIX), min_length=1)
    at_risk_fraction: float = Field(default=0.25, gt=0, lt=1)
    sla_check_interval: Duration = timedelta(seconds=15)
    default_priority: str = "P3"

    @model_validator(mode="after")
    def _consistent(self) -> TriageConfig:
        names = [lv.level for lv in self.matrix]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"priority levels must be unique; repeated: {', '.join(dupes)}")
        if self.default_priority not in names:
            raise ValueError(
                f"default_priority {self.default_priority!r} is not in the matrix "
                f"({', '.join(names)})"
            )
        return self


# Each section's models live in the package that owns it and build on the models above.
from hypercare.detection.config import DetectionConfig  # noqa: E402
from hypercare.feedback.settings import FeedbackConfig  # noqa: E402
from hypercare.gateway.config import GatewayConfig  # noqa: E402
from hypercare.telemetry.config import TelemetryConfig  # noqa: E402
from hypercare.web.settings import WebConfig  # noqa: E402


class HypercareConfig(StrictModel):
    """The whole file. Each section is owned by the package that uses it."""

    triage: TriageConfig = Field(default_factory=TriageConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    web: WebConfig = Field(default_factory=WebConfig)

    @model_validator(mode="after")
    def _detection_routes_known(self) -> HypercareConfig:
        """`detection.routes` and its `baseline_from` name gateway routes; a typo would
        otherwise silently leave a route without its overrides."""
        known = {r.name for r in self.gateway.routes}
        for name, r in self.detection.routes.items():
            for what, value in (("detection.routes", name), ("baseline_from", r.baseline_from)):
                if value is not None and value not in known:
                    raise ValueError(
                        f"{what}: {value!r} is not a route in gateway.routes "
                        f"(known: {', '.join(sorted(known)) or 'none'})"
                    )
        return self


# --- loading ---------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def _interpolate(text: str, where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: environment variable {name} is not set "
            f"(export it, or write ${{{name}:-default}} to give a default)"
        )

    return _ENV_REF.sub(sub, text)


def _to_python(node: yaml.Node, path: Path_, lines: dict[Path_, int], source: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if not isinstance(key, str) or not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{source}:{key_node.start_mark.line + 1}: keys must be strings")
            if key in out:
                raise ConfigError(
                    f"{source}:{key_node.start_mark.line + 1}: duplicate key {key!r}"
                    f" (first given at line {lines[(*path, key)]})"
                )
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _to_python(value_node, (*path, key), lines, source)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(n, (*path, i), lines, source) for i, n in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    value = yaml.safe_load(yaml.serialize(node))
    if isinstance(value, str):
        value = _interpolate(value, f"{source}:{node.start_mark.line + 1}")
    return value


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the last key of `loc`, for "valid keys" hints."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _unwrap(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _format_loc(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


def format_validation_error(
    err: ValidationError, model: type[BaseModel], lines: dict[Path_, int], source: str
) -> str:
    messages = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic adds the tag of a union member to loc; keep only real keys
        key_loc: Path_ = ()
        for part in loc:
            if (*key_loc, part) in lines:
                key_loc = (*key_loc, part)
        line = lines.get(key_loc, 1)
        if e["type"] == "extra_forbidden":
            owner = _model_at(model, loc)
            valid = ", ".join(sorted(owner.model_fields)) if owner else "see docs/configuration.md"
            msg = f"unknown key {loc[-1]!r}; valid keys here: {valid}"
        elif e["type"] == "missing":
            msg = "this key is required"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if "input" in e and e["type"] not in ("model_type", "dict_type"):
                msg += f" (got {e['input']!r})"
        messages.append(f"{source}:{line}: {_format_loc(loc)}: {msg}")
    return "\n".join(messages)


def parse_config(text: str, source: str = "<config>") -> HypercareConfig:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}{line}: not valid YAML: {problem}") from None
    lines: dict[Path_, int] = {}
    data = {} if root is None else _to_python(root, (), lines, source)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}:1: the file must be a mapping of sections (triage:, gateway:, ...)"
        )
    try:
        return HypercareConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, HypercareConfig, lines, source)) from None


def load_config(path: str | Path | None) -> HypercareConfig:
    """Read and validate `path`; no path means every default."""
    if path is None:
        return HypercareConfig()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file (give the path of a hypercare YAML file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    return parse_config(text, str(p))
