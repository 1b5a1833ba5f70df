"""Primitives every configuration section builds on: durations and the strict base model.

A leaf module (it imports no other hypercare module), so each domain's ``config.py`` can
import it without importing the root `hypercare.config`, which imports every section.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """Turn ``"30s"``, ``"15m"``, ``"4h"``, ``"1d"``, ``"250ms"`` or seconds into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r} (use 30s, 15m, 4h or 1d)")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return _bounded(float(value), value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return _bounded(float(m.group(1)) * _UNITS[m.group(2)], value)
    raise ValueError(
        f"invalid duration {value!r} (use a number with a unit: 250ms, 30s, 15m, 4h, 1d)"
    )


MAX_DURATION_SECONDS = 100 * 365 * 86400


def _bounded(seconds: float, value: object) -> timedelta:
    # timedelta cannot hold much more than this (OverflowError), nor NaN
    if not 0 <= seconds <= MAX_DURATION_SECONDS:
        raise ValueError(f"invalid duration {value!r}: at most 100 years (36500d)")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def check_networks(value: list[str]) -> list[str]:
    """Validate addresses and CIDRs (``10.0.0.0/8``, ``127.0.0.1``, ``::1``)."""
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(
                f"invalid trusted proxy {entry!r} (use an IP address or a CIDR like 10.0.0.0/8)"
            ) from None
    return value


# Proxies whose X-Forwarded-For is believed: a list of addresses or CIDRs, empty by default.
Networks = Annotated[list[str], AfterValidator(check_networks)]


class StrictModel(BaseModel):
    """Base for configuration sections: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
