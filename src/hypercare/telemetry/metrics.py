"""The console's own metrics in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

from hypercare.telemetry.live import LiveStore


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(live: LiveStore) -> str:
    s = live.stats
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value:g}")

    metric(
        "hypercare_telemetry_ingested_records_total",
        "counter",
        "Call records stored by the collector.",
        [("", s.records)],
    )
    metric(
        "hypercare_telemetry_ingested_batches_total",
        "counter",
        "Batches stored by the collector.",
        [("", s.batches)],
    )
    metric(
        "hypercare_telemetry_duplicate_batches_total",
        "counter",
        "Re-sent batches acknowledged without storing them again.",
        [("", s.duplicates)],
    )
    metric(
        "hypercare_telemetry_batch_lag_seconds",
        "gauge",
        "Age of the oldest record of the last batch when it was stored.",
        [("", s.last_lag_seconds)],
    )
    metric(
        "hypercare_telemetry_store_write_seconds",
        "summary",
        "Time to store one batch (detail and batch row, one transaction).",
        [("_sum", s.write_seconds_sum), ("_count", s.write_seconds_count)],
    )
    metric(
        "hypercare_telemetry_flush_seconds",
        "summary",
        "Time to write closed minutes as rollups.",
        [("_sum", s.flush_seconds_sum), ("_count", s.flush_count)],
    )
    metric(
        "hypercare_telemetry_live_aggregates",
        "gauge",
        "Aggregates held in memory, not yet written as rollups.",
        [("", len(live.pending))],
    )
    cache = live.histograms
    metric(
        "hypercare_telemetry_histogram_cache_lookups_total",
        "counter",
        "Rollup histograms asked for by queries, found decoded in memory (hit) or read "
        "from the store (miss).",
        [('{result="hit"}', cache.hits), ('{result="miss"}', cache.misses)],
    )
    metric(
        "hypercare_telemetry_histogram_cache_bytes",
        "gauge",
        "Memory held by decoded rollup histograms (telemetry.histogram_cache_mb).",
        [("", cache.bytes)],
    )
    metric(
        "hypercare_telemetry_dropped_total",
        "counter",
        "Records a gateway node dropped because its spool was full (as last reported).",
        [(f'{{node="{_label(n)}"}}', v) for n, v in sorted(s.node_dropped.items())],
    )
    metric(
        "hypercare_telemetry_spool_bytes",
        "gauge",
        "Bytes waiting in a gateway node's spool (as last reported).",
        [(f'{{node="{_label(n)}"}}', v) for n, v in sorted(s.node_spool_bytes.items())],
    )
    metric(
        "hypercare_telemetry_unparsed_lines_total",
        "counter",
        "Access-log lines or entries that did not match their format, per source (samples: "
        "GET /api/v1/telemetry/sources and the console's APIs page).",
        [(f'{{source="{_label(n)}"}}', r.total) for n, r in sorted(s.unparsed.sources.items())],
    )
    return "\n".join(lines) + "\n"
