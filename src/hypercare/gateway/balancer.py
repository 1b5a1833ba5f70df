"""Target selection: round robin (smooth weighted), least connections, and consistent hashing.

A `Target` is the live state of one upstream address (in-flight count, health, ejection). The
balancers only read that state and pick; `health.py` and the proxy change it. Hashing is
rendezvous (highest random weight) hashing, so a target leaving the rotation moves only the keys
that were on it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Target:
    """One upstream address and what the gateway currently knows about it."""

    host: str
    port: int
    weight: int = 1
    address: str = ""
    active: int = 0  # requests in flight
    healthy: bool = True  # verdict of the active checker
    ejected_until: float = 0.0  # passive ejection, monotonic seconds
    consecutive_failures: int = 0  # passive: connection-level errors in a row
    check_successes: int = 0  # active: consecutive results, for the thresholds
    check_failures: int = 0
    current_weight: int = 0  # smooth weighted round robin state
    _hash_seed: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not self.address:
            self.address = f"{self.host}:{self.port}"
        self._hash_seed = self.address.encode()

    def available(self, now: float) -> bool:
        return self.healthy and now >= self.ejected_until


class Balancer:
    """Base: subclasses implement `pick` over the targets that are available now."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = list(targets)

    def candidates(self, now: float, exclude: Target | None = None) -> list[Target]:
        return [t for t in self.targets if t is not exclude and t.available(now)]

    def pick(self, now: float, key: str = "", exclude: Target | None = None) -> Target | None:
        raise NotImplementedError


class RoundRobin(Balancer):
    """Smooth weighted round robin (as nginx): weights 5,1,1 give a a b a c a a, not aaaaabc."""

    def pick(self, now: float, key: str = "", exclude: Target | None = None) -> Target | None:
        best: Target | None = None
        total = 0
        for t in self.targets:
            if t is exclude or not (t.healthy and now >= t.ejected_until):
                continue
            t.current_weight += t.weight
            total += t.weight
            if best is None or t.current_weight > best.current_weight:
                best = t
        if best is not None:
            best.current_weight -= total
        return best


class LeastConnections(Balancer):
    """Fewest requests in flight relative to weight; ties go round robin."""

    def __init__(self, targets: Sequence[Target]) -> None:
        super().__init__(targets)
        self._next = 0

    def pick(self, now: float, key: str = "", exclude: Target | None = None) -> Target | None:
        n = len(self.targets)
        best: Target | None = None
        start = self._next
        for i in range(n):
            t = self.targets[(start + i) % n]
            if t is exclude or not t.available(now):
                continue
            if best is None or t.active * best.weight < best.active * t.weight:
                best = t
        self._next = (start + 1) % max(n, 1)
        return best


class RendezvousHash(Balancer):
    """Same key, same target while it is available (client IP or a header value)."""

    def pick(self, now: float, key: str = "", exclude: Target | None = None) -> Target | None:
        best: Target | None = None
        best_score = -1.0
        kb = key.encode()
        for t in self.targets:
            if t is exclude or not t.available(now):
                continue
            h = int.from_bytes(hashlib.blake2b(t._hash_seed + b"\0" + kb, digest_size=8).digest())
            # Weighted rendezvous: score = weight / -ln(u), u uniform in (0, 1).
            u = (h + 1) / 2.0**64
            score = t.weight / -_ln(u)
            if score > best_score:
                best, best_score = t, score
        return best


def _ln(x: float) -> float:
    return math.log(x) if x < 1.0 else -1e-300


def make_balancer(policy: str, targets: Sequence[Target]) -> tuple[Balancer, str | None]:
    """The balancer for a config `balance` value, and the hash source: None, "ip" or a header."""
    if policy == "round_robin":
        return RoundRobin(targets), None
    if policy == "least_connections":
        return LeastConnections(targets), None
    if policy.startswith("hash(") and policy.endswith(")"):
        inner = policy[5:-1]
        source = "ip" if inner == "ip" else inner.removeprefix("header:").lower()
        return RendezvousHash(targets), source
    raise ValueError(f"unknown balance policy {policy!r}")
