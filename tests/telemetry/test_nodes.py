"""Node tokens: stored hashed, rotated for the local gateway, created from the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.errors import Unauthenticated
from hypercare.telemetry import nodes
from hypercare.telemetry.models import TelemetryNode


async def test_local_token_is_rotated_or_kept_and_only_its_hash_is_stored(
    session: AsyncSession,
) -> None:
    first = await nodes.ensure_local_node_token(session=session)
    second = await nodes.ensure_local_node_token(session=session)
    assert first != second and first.startswith(nodes.NODE_PREFIX)
    with pytest.raises(Unauthenticated):
        await nodes.authenticate_node(session=session, token=first)  # revoked by rotation
    assert await nodes.authenticate_node(session=session, token=second) == nodes.LOCAL_NODE
    given = "hcn_given-by-the-operator-0123456789"
    assert await nodes.ensure_local_node_token(session=session, token=given) == given
    assert await nodes.ensure_local_node_token(session=session, token=given) == given
    assert await nodes.authenticate_node(session=session, token=given) == nodes.LOCAL_NODE
    stored = " ".join(
        f"{r.token_hash} {r.prefix}" for r in (await session.scalars(select(TelemetryNode)))
    )
    assert given not in stored and second not in stored


async def test_a_verified_token_is_not_looked_up_again_until_its_ttl_ends(
    session: AsyncSession,
) -> None:
    now = [100.0]
    verified = nodes.VerifiedNodes(ttl=10.0, clock=lambda: now[0])
    token = await nodes.ensure_local_node_token(session=session)
    assert await nodes.authenticate_node(session=session, token=token, verified=verified) == (
        nodes.LOCAL_NODE
    )
    await nodes.ensure_local_node_token(session=session)  # revokes `token` in the store
    now[0] += 9.9  # still within the ttl: taken from the cache
    assert await nodes.authenticate_node(session=session, token=token, verified=verified) == (
        nodes.LOCAL_NODE
    )
    now[0] += 0.1  # the ttl ended: looked up, and refused
    with pytest.raises(Unauthenticated):
        await nodes.authenticate_node(session=session, token=token, verified=verified)
    with pytest.raises(Unauthenticated):  # a refusal is never cached
        await nodes.authenticate_node(session=session, token=token, verified=verified)


def test_verified_tokens_are_bounded_oldest_out_first() -> None:
    verified = nodes.VerifiedNodes(most=3, clock=lambda: 0.0)
    for i in range(5):
        verified.put(f"digest-{i}", f"node-{i}")
    assert [verified.get(f"digest-{i}") for i in range(5)] == [
        None,
        None,
        "node-2",
        "node-3",
        "node-4",
    ]


def test_console_url_for_local_workers() -> None:
    assert nodes.local_console_url("0.0.0.0", 8700) == "http://127.0.0.1:8700"
    assert nodes.local_console_url("::1", 8700) == "http://[::1]:8700"


def test_node_token_cli(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "hypercare",
            "telemetry",
            "node-token",
            "--name",
            "edge-1",
            "--data-dir",
            str(tmp_path),
            "--create-store",  # a fresh directory: say so, or the command refuses it
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("hcn_")
