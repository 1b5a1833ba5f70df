"""The ``review:`` section: when reviews are drafted, how the impact window is found, and
the runbooks kept in the file.

```yaml
review:
  priorities: [P1, P2]        # issues that get a drafted review when resolved
  lookback: 1h                # how far before the first signal to look for failing calls
  gap: 5m                     # failures further apart than this end the impact window
  runbooks:
    - name: payments-upstream
      title: Payments upstream times out
      components: [payments]
      routes: [payment-status]
      rules: [error-rate]
      body: |
        1. Check the provider's status page ...
```
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from hypercare.configtypes import Duration, StrictModel

MAX_RUNBOOK_BYTES = 64 * 1024


class RunbookConfig(StrictModel):
    """A Markdown runbook shown on the issues it matches (by component, route or the
    detection rule whose signal is linked)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$", description="unique slug")
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=MAX_RUNBOOK_BYTES)
    components: list[str] = Field(default_factory=list, max_length=50)
    routes: list[str] = Field(default_factory=list, max_length=50)
    rules: list[str] = Field(default_factory=list, max_length=50)


class ReviewConfig(StrictModel):
    enabled: bool = True
    priorities: list[str] = Field(default_factory=lambda: ["P1", "P2"], max_length=9)
    lookback: Duration = timedelta(hours=1)
    gap: Duration = timedelta(minutes=5)
    # call blocks read for one review, at most (a bound on the work of one draft)
    max_blocks: int = Field(default=5000, ge=1, le=1_000_000)
    poll_interval: Duration = timedelta(seconds=2)
    runbooks: list[RunbookConfig] = Field(default_factory=list, max_length=1000)

    def reference_errors(
        self, priorities: list[str], routes: list[str]
    ) -> list[tuple[tuple[str | int, ...], str]]:
        """Unknown priorities and gateway routes, and runbook names used twice."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        for i, p in enumerate(self.priorities):
            if p not in priorities:
                found.append(
                    (
                        ("review", "priorities", i),
                        f"unknown priority {p!r} (the matrix has {', '.join(priorities)})",
                    )
                )
        seen: set[str] = set()
        for i, rb in enumerate(self.runbooks):
            if rb.name in seen:
                found.append(
                    (("review", "runbooks", i, "name"), f"duplicate runbook name {rb.name!r}")
                )
            seen.add(rb.name)
            for j, route in enumerate(rb.routes):
                if routes and route not in routes:
                    found.append(
                        (
                            ("review", "runbooks", i, "routes", j),
                            f"unknown route {route!r} (known routes: {', '.join(routes)})",
                        )
                    )
        return found
