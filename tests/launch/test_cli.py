"""`hypercare launch exit-check` and `hypercare launch report`, run as a real process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from hypercare.config import parse_config
from hypercare.store.db import create_engine, session_factory
from hypercare.triage import service as triage
from hypercare.triage.models import IssueCreate
from hypercare.triage.rules import Matrix, Status

HYPERCARE = [sys.executable, "-m", "hypercare"]

CONFIG = """\
launches:
  - name: checkout-v2
    start: 2026-01-05T09:00:00Z
    routes: [payment-status]
    exit_criteria:
      - no_open: [P1, P2]
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HYPERCARE, *args], capture_output=True, text=True, timeout=120, check=False
    )


async def _issue(data_dir: Path, *, resolve: int | None = None) -> int:
    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'hypercare.db'}")
    matrix = Matrix(parse_config(CONFIG).triage)
    try:
        async with session_factory(engine)() as session, session.begin():
            if resolve is not None:
                for step in (Status.triaged, Status.resolved):
                    await triage.transition(
                        session=session,
                        matrix=matrix,
                        issue_id=resolve,
                        to=step,
                        reason="fixed",
                        actor="t",
                    )
                return resolve
            issue = await triage.create_issue(
                session=session,
                matrix=matrix,
                actor="t",
                data=IssueCreate(title="status 503", priority="P2", route="payment-status"),
            )
            return issue.id
    finally:
        await engine.dispose()


def test_exit_check_is_a_gate(tmp_path: Path) -> None:
    cfg = tmp_path / "hc.yaml"
    cfg.write_text(CONFIG)
    data = ["--config", str(cfg), "--data-dir", str(tmp_path)]
    assert run("migrate", "--data-dir", str(tmp_path)).returncode == 0
    issue_id = asyncio.run(_issue(tmp_path))

    r = run("launch", "exit-check", "checkout-v2", *data)
    assert r.returncode == 1, r.stderr
    assert (
        "NOT READY" in r.stdout and f"[FAIL] no open P1/P2 issue: 1 open: #{issue_id}" in r.stdout
    )
    r = run("launch", "exit-check", "checkout-v2", "--json", *data)
    card = json.loads(r.stdout)
    assert r.returncode == 1 and card["passed"] is False
    assert card["results"][0]["links"] == [f"/issues/{issue_id}"]

    asyncio.run(_issue(tmp_path, resolve=issue_id))
    r = run("launch", "exit-check", "checkout-v2", *data)
    assert r.returncode == 0 and "READY TO EXIT (1/1 criteria pass)" in r.stdout

    r = run("launch", "report", "checkout-v2", "--kind", "final", *data)
    assert r.returncode == 0 and "# Post-hypercare report: checkout-v2" in r.stdout
    out = tmp_path / "r.html"
    r = run("launch", "report", "checkout-v2", "--format", "html", "-o", str(out), *data)
    assert r.returncode == 0 and out.read_text().startswith("<!doctype html>")


def test_exit_check_errors_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "hc.yaml"
    cfg.write_text(CONFIG)
    # a store that does not exist is refused, not created
    r = run(
        "launch", "exit-check", "checkout-v2", "--config", str(cfg), "--data-dir", str(tmp_path)
    )
    assert r.returncode == 2 and "no hypercare store" in r.stderr and "Traceback" not in r.stderr
    # a name neither the file nor the store (launches made through the API) knows
    assert run("migrate", "--data-dir", str(tmp_path)).returncode == 0
    r = run("launch", "exit-check", "nope", "--config", str(cfg), "--data-dir", str(tmp_path))
    assert r.returncode == 2
    assert "no launch named 'nope'; known launches: checkout-v2" in r.stderr
    r = run("launch", "report", "nope", "--data-dir", str(tmp_path))
    assert r.returncode == 2 and "no --config given" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.replace("[P1, P2]", "[P1, P9]"))
    r = run("launch", "exit-check", "checkout-v2", "--config", str(bad))
    assert r.returncode == 2 and f"{bad}:6: launches[0].exit_criteria[0].no_open[1]" in r.stderr
