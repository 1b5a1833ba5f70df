"""The ``gateway:`` section of the configuration file: upstreams, routes, consumers, limits.

Every model is strict (unknown keys are errors) and frozen. Cross-references (a route's
upstream, a route's allowed consumers) are checked here so that a typo fails at load time with
a line number instead of at the first request.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hypercare.configtypes import Duration, Networks, StrictModel

_TARGET = re.compile(
    r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})(?:\s+(?P<weight>\d+))?$"
)
_BALANCE = re.compile(r"^(round_robin|least_connections|hash\((ip|header:[A-Za-z0-9\-_]+)\))$")
_PATH = re.compile(r"^/[^\s?#]*$")


class HealthConfig(StrictModel):
    """Active health checks: GET `path` on every target each `interval`."""

    path: str = Field(default="/healthz", pattern=r"^/")
    interval: Duration = timedelta(seconds=2)
    timeout: Duration = timedelta(seconds=1)
    healthy: int = Field(default=2, ge=1, description="consecutive successes to return")
    unhealthy: int = Field(default=3, ge=1, description="consecutive failures to leave")


class PassiveConfig(StrictModel):
    """Passive ejection: `failures` consecutive connection-level errors eject for `eject`."""

    failures: int = Field(default=5, ge=1)
    eject: Duration = timedelta(seconds=30)


class TargetConfig(StrictModel):
    address: str
    weight: int = Field(default=1, ge=1, le=1000)


class UpstreamConfig(StrictModel):
    """A named group of targets that one balancing policy spreads requests over."""

    targets: list[str | TargetConfig] = Field(min_length=1)
    balance: str = "round_robin"
    health: HealthConfig | None = None
    passive: PassiveConfig = Field(default_factory=PassiveConfig)
    max_idle_connections: int = Field(default=64, ge=0, le=10000)
    idle_connection_timeout: Duration = timedelta(seconds=30)

    @field_validator("balance")
    @classmethod
    def _check_balance(cls, value: str) -> str:
        if not _BALANCE.match(value):
            raise ValueError(
                f"unknown balance {value!r} "
                "(use round_robin, least_connections, hash(ip) or hash(header:NAME))"
            )
        return value

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, value: list[str | TargetConfig]) -> list[str | TargetConfig]:
        for t in value:
            address = t.address if isinstance(t, TargetConfig) else t
            m = _TARGET.match(address)
            if not m or not 0 < int(m.group("port")) < 65536:
                raise ValueError(
                    f"invalid target {address!r} (use HOST:PORT, optionally followed by a weight)"
                )
        return value

    def target_list(self) -> list[tuple[str, int, int]]:
        """The targets as (host, port, weight)."""
        out = []
        for t in self.targets:
            address, weight = (t.address, t.weight) if isinstance(t, TargetConfig) else (t, 1)
            m = _TARGET.match(address)
            if m is None:  # validated above; kept for the type checker
                raise ValueError(address)
            if m.group("weight"):
                weight = int(m.group("weight"))
            host = m.group("host").strip("[]")
            out.append((host, int(m.group("port")), weight))
        return out


class MatchConfig(StrictModel):
    """Which requests a route takes: exact path, prefix (``/api/*``) or params (``/o/{id}``)."""

    path: str
    methods: list[str] | None = None

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not _PATH.match(value):
            raise ValueError(f"invalid path pattern {value!r} (must start with / and have no ?#)")
        if "*" in value[:-1] or (value.endswith("*") and not value.endswith("/*")):
            raise ValueError(f"invalid path pattern {value!r}: '*' is only allowed as a final /*")
        return value

    @field_validator("methods")
    @classmethod
    def _upper(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for m in value:
            if not re.match(r"^[A-Za-z]+$", m):
                raise ValueError(f"invalid method {m!r}")
        return [m.upper() for m in value]


class RateLimitConfig(StrictModel):
    """GCRA: `limit` requests per `per`, bursts up to `limit`, counted per `by`."""

    limit: int = Field(ge=1)
    per: Duration
    by: Literal["consumer", "ip", "route"] = "consumer"

    @field_validator("per")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("per must be a positive duration")
        return value


class TimeoutsConfig(StrictModel):
    connect: Duration = timedelta(seconds=2)
    response: Duration = timedelta(seconds=30)  # until the upstream's response headers
    idle: Duration = timedelta(seconds=60)  # between two body reads, either way


class RouteConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    match: MatchConfig
    upstream: str
    auth: Literal["none", "key", "jwt"] = "none"
    allow: list[str] | None = None  # consumer names allowed; None means any authenticated one
    rate_limit: RateLimitConfig | None = None
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    retries: int = Field(default=0, ge=0, le=5)
    max_body: int = Field(default=10 * 1024 * 1024, ge=0, description="bytes; 413 above")
    strip_prefix: bool = False
    websocket: bool = False  # forward WebSocket handshakes (Upgrade: websocket); off: plain
    tags: dict[str, str] = Field(default_factory=dict)


class ConsumerConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-@]+$")
    keys: list[str] = Field(default_factory=list)

    @field_validator("keys")
    @classmethod
    def _nonempty(cls, value: list[str]) -> list[str]:
        if any(len(k) < 8 for k in value):
            raise ValueError("every key must be at least 8 characters (is an env var unset?)")
        return value


class JwtConfig(StrictModel):
    """JWT validation: HS256 with `secret` and/or RS256 with a PEM `public_key`."""

    secret: str | None = None
    public_key: str | None = None
    audience: str | None = None
    issuer: str | None = None
    consumer_claim: str = "sub"
    leeway: Duration = timedelta(seconds=30)

    @field_validator("public_key")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is not None:
            from hypercare.gateway.auth import RsaPublicKey

            try:
                RsaPublicKey.from_pem(value)
            except ValueError:
                raise ValueError("public_key is not a PEM RSA public key") from None
        return value

    @model_validator(mode="after")
    def _one_key(self) -> JwtConfig:
        if self.secret is None and self.public_key is None:
            raise ValueError("jwt needs a secret (HS256) or a public_key (RS256)")
        return self


class LimitsConfig(StrictModel):
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    max_headers: int = Field(default=100, ge=8, le=10000, description="header fields; 431 above")
    header_timeout: Duration = timedelta(seconds=10)  # 408 when a request's head is slower
    # 408 when a client that is sending a request body pauses longer than this; the upstream
    # is not blamed (no 504, no passive failure)
    client_body_timeout: Duration = timedelta(seconds=30)
    keepalive_timeout: Duration = timedelta(seconds=75)  # idle client connections
    drain_timeout: Duration = timedelta(seconds=30)  # SIGTERM: wait this long for in-flight

    @field_validator("client_body_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("client_body_timeout must be a positive duration (e.g. 30s)")
        return value


class GatewayConfig(StrictModel):
    """The data plane: where requests go, who may send them, and how fast."""

    upstreams: dict[str, UpstreamConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)
    consumers: list[ConsumerConfig] = Field(default_factory=list)
    jwt: JwtConfig | None = None
    redis_url: str | None = Field(default=None, pattern=r"^(redis|rediss|unix)://")
    redis_timeout: Duration = timedelta(milliseconds=100)
    redis_prefix: str = "hypercare:rl:"
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    # peers whose X-Forwarded-For is believed (addresses/CIDRs); anyone else's is replaced
    trusted_proxies: Networks = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_check(self) -> GatewayConfig:
        names = set()
        consumers = {consumer.name for consumer in self.consumers}
        for r in self.routes:
            if r.name in names:
                raise ValueError(f"route name {r.name!r} is used twice")
            names.add(r.name)
            if r.upstream not in self.upstreams:
                known = ", ".join(sorted(self.upstreams)) or "none defined"
                raise ValueError(
                    f"route {r.name!r}: unknown upstream {r.upstream!r} (known: {known})"
                )
            if r.auth == "jwt" and self.jwt is None:
                raise ValueError(f"route {r.name!r} uses auth: jwt but gateway.jwt is not set")
            for allowed in r.allow or ():
                if allowed not in consumers and r.auth == "key":
                    raise ValueError(f"route {r.name!r}: allow names unknown consumer {allowed!r}")
            if r.rate_limit is not None and r.rate_limit.by == "consumer" and r.auth == "none":
                raise ValueError(
                    f"route {r.name!r}: rate_limit by consumer needs auth (key or jwt); "
                    "use by: ip or by: route"
                )
        seen: set[str] = set()
        for c in self.consumers:
            if c.name in seen:
                raise ValueError(f"consumer name {c.name!r} is used twice")
            seen.add(c.name)
        return self
