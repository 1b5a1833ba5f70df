"""What a worker knows of its routes and upstreams, compiled once from the configuration.

`RouteState` and `UpstreamState` hold everything the request path reads as plain attributes
(timeouts in seconds, the allow list as a frozenset, the balancer, one pool per target), so
an exchange never looks at the pydantic configuration. `runtime.Gateway` builds them;
`exchange.Exchange` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypercare.gateway.balancer import Balancer, Target, make_balancer
from hypercare.gateway.config import PassiveConfig, RouteConfig, UpstreamConfig
from hypercare.gateway.upstream import Pool


@dataclass(slots=True)
class UpstreamState:
    name: str
    targets: list[Target]
    balancer: Balancer
    hash_source: str | None
    pools: dict[str, Pool]
    passive: PassiveConfig


@dataclass(slots=True)
class RateLimitState:
    limit: int
    period: float
    by: str


@dataclass(slots=True)
class RouteState:
    """A route with everything the hot path needs precomputed as plain attributes."""

    name: str
    upstream: UpstreamState
    auth: str
    allow: frozenset[str] | None
    rate_limit: RateLimitState | None
    connect: float
    response: float
    idle: float
    retries: int
    max_body: int
    strip_prefix: bool
    prefix: str
    websocket: bool = False
    tags: dict[str, str] = field(default_factory=dict)


def route_state(r: RouteConfig, upstream: UpstreamState) -> RouteState:
    rl = r.rate_limit
    return RouteState(
        name=r.name,
        upstream=upstream,
        auth=r.auth,
        allow=frozenset(r.allow) if r.allow is not None else None,
        rate_limit=RateLimitState(rl.limit, rl.per.total_seconds(), rl.by) if rl else None,
        connect=r.timeouts.connect.total_seconds(),
        response=r.timeouts.response.total_seconds(),
        idle=r.timeouts.idle.total_seconds(),
        retries=r.retries,
        max_body=r.max_body,
        strip_prefix=r.strip_prefix,
        prefix=r.match.path[:-1] if r.match.path.endswith("/*") else "",
        websocket=r.websocket,
        tags=dict(r.tags),
    )


def upstream_state(name: str, u: UpstreamConfig) -> UpstreamState:
    """An upstream's targets, balancer and one connection pool per target."""
    targets = [Target(h, p, w) for h, p, w in u.target_list()]
    balancer, source = make_balancer(u.balance, targets)
    pools = {
        t.address: Pool(t, u.max_idle_connections, u.idle_connection_timeout.total_seconds())
        for t in targets
    }
    return UpstreamState(name, targets, balancer, source, pools, u.passive)
