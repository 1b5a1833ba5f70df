"""The configured people and schedules as the plain values `oncall` computes with."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hypercare.response.config import ScheduleConfig, clock_time
from hypercare.response.oncall import WEEKDAYS, Layer, Schedule, Window


def schedule_of(config: ScheduleConfig) -> Schedule:
    layers = []
    for i, layer in enumerate(config.layers):
        windows = tuple(
            Window(
                days=frozenset(WEEKDAYS.index(d) for d in r.days),
                start=clock_time(r.start),
                end=clock_time(r.end),
                end_of_day=r.end == "24:00",
            )
            for r in layer.restrictions
        )
        layers.append(
            Layer(
                name=layer.name or f"layer {i + 1}",
                members=tuple(layer.members),
                start=datetime.combine(layer.start, clock_time(layer.handoff)),
                length=layer.length,
                restrictions=windows,
            )
        )
    return Schedule(config.name, ZoneInfo(config.time_zone), tuple(layers))
