"""Validation of a fix — pure: is the route healthy for the whole window, or did it regress?

Other tools leave this step to hope. Hypercare watches the issue's routes after a fix and
decides with numbers: `verified` once the window passed healthy, `regressed` as soon as a
detection rule fires again on one of the routes or users report the same route again.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypercare.detection.rules import Metric, WindowStats, metric_value


@dataclass(frozen=True, slots=True)
class Judgement:
    outcome: str  # "watching" | "verified" | "regressed"
    reasons: tuple[str, ...]


def judge(
    *,
    elapsed: float,
    window: float,
    grace: float,
    started: float,
    firing: list[tuple[str, float]],
    new_user_reports: int,
    after: list[WindowStats],
) -> Judgement:
    """Decide one watch, `elapsed` seconds after it started at `started` (Unix seconds).

    `firing` lists (rule, firing since) for the rules firing on the watched routes. A rule
    that was already firing when the fix landed gets `grace` seconds to recover (it needs
    its own clear time); one that fires after the fix is a regression at once."""
    refired = [name for name, since in firing if since > started]
    if refired:
        return Judgement("regressed", tuple(f"rule {name} fired again" for name in refired))
    stuck = [name for name, _ in firing if elapsed > grace]
    if stuck:
        return Judgement(
            "regressed",
            tuple(f"rule {name} still firing {elapsed:.0f} s after the fix" for name in stuck),
        )
    if new_user_reports:
        return Judgement(
            "regressed", (f"{new_user_reports} new user report(s) about the same route",)
        )
    if elapsed < window or firing:
        return Judgement("watching", ())
    return Judgement("verified", tuple(describe(s) for s in after) or ("no traffic to judge",))


def describe(stats: WindowStats) -> str:
    """One line of numbers for a timeline: volume, error rate, p95."""
    rate = metric_value(stats, Metric.error_rate)
    p95 = stats.p95
    parts = [f"{stats.route}: {stats.requests} calls"]
    parts.append("error rate n/a" if rate is None else f"error rate {rate * 100:.1f} %")
    parts.append("p95 n/a" if p95 is None else f"p95 {p95:.0f} ms")
    return ", ".join(parts)


def compare(before: WindowStats, after: WindowStats) -> str:
    """Before/after numbers for the timeline, e.g. "error rate 38.0 % → 0.2 %, p95 612 → 41 ms"."""
    out = [before.route + ":"]
    rb, ra = metric_value(before, Metric.error_rate), metric_value(after, Metric.error_rate)
    if rb is not None and ra is not None:
        out.append(f"error rate {rb * 100:.1f} % → {ra * 100:.1f} %,")
    if before.p95 is not None and after.p95 is not None:
        out.append(f"p95 {before.p95:.0f} → {after.p95:.0f} ms,")
    out.append(f"{before.requests} → {after.requests} calls")
    return " ".join(out)
