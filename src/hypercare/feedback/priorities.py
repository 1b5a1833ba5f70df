"""The suggested priority of a new issue from a signal's source and severity hint."""

from __future__ import annotations

from collections.abc import Mapping

from hypercare.triage.rules import Matrix


def suggest(
    priorities: Mapping[str, Mapping[str, str]],
    matrix: Matrix,
    *,
    source: str,
    severity: str | None,
) -> str:
    """The source's own table, then the ``*`` table, then the matrix default. A table's
    ``*`` entry matches every severity; priorities not in the matrix fall back to default."""
    hint = (severity or "").strip().lower()
    for table_name in (source, "*"):
        table = priorities.get(table_name) or {}
        chosen = table.get(hint) if hint else None
        if chosen is None:
            chosen = table.get("*")
        if chosen is not None and chosen in matrix.by_name:
            return chosen
    return matrix.default_priority
