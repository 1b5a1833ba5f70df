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
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from hypercare.comms.config import CommsConfig
from hypercare.configtypes import StrictModel
from hypercare.detection.config import DetectionConfig
from hypercare.errors import ConfigError
from hypercare.feedback.config import FeedbackConfig
from hypercare.gateway.config import GatewayConfig, RouteConfig
from hypercare.launch.config import LaunchConfig
from hypercare.launch.config import reference_errors as launch_reference_errors
from hypercare.response.config import ResponseConfig, reference_errors
from hypercare.review.config import ReviewConfig
from hypercare.status.config import StatusConfig
from hypercare.telemetry.config import TelemetryConfig
from hypercare.telemetry.external import ExternalRouteConfig, check_names
from hypercare.triage.config import TriageConfig
from hypercare.web.config import WebConfig

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class HypercareConfig(StrictModel):
    """The whole file. Each section is owned by the package that uses it
    (``<domain>/config.py`` defining ``<Domain>Config``)."""

    triage: TriageConfig = Field(default_factory=TriageConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    response: ResponseConfig = Field(default_factory=ResponseConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    comms: CommsConfig = Field(default_factory=CommsConfig)
    # routes Hypercare does not proxy but hears about (OTLP spans, access logs)
    external_routes: list[ExternalRouteConfig] = Field(default_factory=list, max_length=10000)
    status: StatusConfig = Field(default_factory=StatusConfig)
    launches: list[LaunchConfig] = Field(default_factory=list, max_length=100)

    def all_routes(self) -> list[RouteConfig | ExternalRouteConfig]:
        """Every route with telemetry, gateway routes first: analytics, detection,
        correlation and the impact gate treat external routes like gateway routes (an
        external route's `upstream` is "")."""
        return [*self.gateway.routes, *self.external_routes]

    def route_names(self) -> list[str]:
        """Every route with telemetry: the gateway's, then the external ones."""
        return [r.name for r in self.gateway.routes] + [r.name for r in self.external_routes]

    def route_tags(self) -> dict[str, dict[str, str]]:
        """Tags (``component``, ``criticality``...) of every gateway and external route."""
        tags = {r.name: r.tags for r in self.gateway.routes}
        tags.update({r.name: r.tags for r in self.external_routes})
        return tags

    def reference_errors(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Names that point at nothing, with their place in the file (checked after the
        sections themselves are valid)."""
        priorities = [lv.level for lv in self.triage.matrix]
        return [
            *reference_errors(self.response, priorities),
            *self.review.reference_errors(priorities, self.route_names()),
            *self._comms_reference_errors(),
            *launch_reference_errors(
                self.launches,
                routes={name: tags.get("component") for name, tags in self.route_tags().items()},
                priorities=priorities,
            ),
        ]

    def _comms_reference_errors(self) -> list[tuple[tuple[str | int, ...], str]]:
        found: list[tuple[tuple[str | int, ...], str]] = []
        sendable = ("email", "slack", "teams", "webhook")
        for i, name in enumerate(self.comms.digest.channels):
            ch = next((c for c in self.response.channels if c.name == name), None)
            if ch is None or ch.type not in sendable:
                found.append(
                    (
                        ("comms", "digest", "channels", i),
                        f"{name!r} is not an email, slack, teams or webhook channel of "
                        "response.channels",
                    )
                )
        subs = self.comms.subscribers
        if subs.channel is not None:
            ch = next((c for c in self.response.channels if c.name == subs.channel), None)
            if ch is None or ch.type != "email":
                found.append(
                    (
                        ("comms", "subscribers", "channel"),
                        f"{subs.channel!r} is not an email channel of response.channels",
                    )
                )
        fixed = self.comms.fixed
        if fixed is None:
            return found
        channel = next((c for c in self.response.channels if c.name == fixed.channel), None)
        if channel is None or channel.type != "email":
            emails = [c.name for c in self.response.channels if c.type == "email"]
            found.append(
                (
                    ("comms", "fixed", "channel"),
                    f"{fixed.channel!r} is not an email channel of response.channels "
                    f"(email channels: {', '.join(emails) or 'none'})",
                )
            )
        return found

    @model_validator(mode="after")
    def _detection_routes_known(self) -> HypercareConfig:
        """`detection.routes` and its `baseline_from` name gateway routes; a typo would
        otherwise silently leave a route without its overrides."""
        check_names(self.external_routes, (r.name for r in self.gateway.routes))
        known = set(self.route_names())
        for name, r in self.detection.routes.items():
            for what, value in (("detection.routes", name), ("baseline_from", r.baseline_from)):
                if value is not None and value not in known:
                    raise ValueError(
                        f"{what}: {value!r} is not a route in gateway.routes or external_routes "
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
    # constructed from the composed node: an empty value (`response:`) is None, not a crash
    value = yaml.constructor.SafeConstructor().construct_object(node, deep=True)
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


_FLOW_PATH = re.compile(r"([{,]\s*path:\s*)(/[^\s,{}]*\{[^\s]*)")


def quote_flow_paths(text: str) -> str:
    """`text` with unquoted route paths holding ``{param}`` inside flow mappings quoted.

    ``match: {path: /orders/{id}, methods: [GET]}`` is how route matches read naturally,
    but YAML takes the ``{`` of ``{id}`` as the start of a mapping. The path runs until a
    ``,`` or ``}`` outside its own braces; quotes are added on the same line, so line
    numbers in errors stay right.

    >>> quote_flow_paths("match: {path: /o/{id}/x, methods: [GET]}")
    'match: {path: "/o/{id}/x", methods: [GET]}'
    """

    def fix(m: re.Match[str]) -> str:
        value, depth = m.group(2), 0
        for i, ch in enumerate(value):
            if ch == "{":
                depth += 1
            elif ch == "}":
                if depth == 0:
                    return f'{m.group(1)}"{value[:i]}"{value[i:]}'
                depth -= 1
            elif ch == "," and depth == 0:
                return f'{m.group(1)}"{value[:i]}"{value[i:]}'
        return m.group(0)

    return _FLOW_PATH.sub(fix, text)


def parse_config(text: str, source: str = "<config>") -> HypercareConfig:
    try:
        try:
            root = yaml.compose(text)
        except yaml.YAMLError:
            fixed = quote_flow_paths(text)
            if fixed == text:
                raise
            root = yaml.compose(fixed)
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
        config = HypercareConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, HypercareConfig, lines, source)) from None
    dangling = config.reference_errors()
    if dangling:
        raise ConfigError(
            "\n".join(
                f"{source}:{lines.get(loc, 1)}: {_format_loc(loc)}: {msg}" for loc, msg in dangling
            )
        )
    return config


def read_source(path: str | Path) -> str:
    """The text of a configuration file; ConfigError naming the file when it cannot be read."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file (give the path of a hypercare YAML file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None


def load_config(path: str | Path | None) -> HypercareConfig:
    """Read and validate `path`; no path means every default."""
    if path is None:
        return HypercareConfig()
    return parse_config(read_source(path), str(path))
