"""`hypercare tail`'s file following: rotation by rename and by copytruncate, restarts, and
shipping through the gateway shipper (spool while the console is away, replay)."""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path

import orjson

from hypercare.telemetry.accesslog import FORMATS, unrouted
from hypercare.telemetry.shipper import Shipper
from hypercare.telemetry.tail import Follower, run_tail
from hypercare.telemetry.transport import ConsoleUnreachable, Reply
from hypercare.telemetry.wire import decode_batch
from tests.support import wait_until_async

SAMPLES = Path(__file__).parent / "samples"


def write(path: Path, *lines: bytes) -> None:
    with path.open("ab") as f:
        for line in lines:
            f.write(line + b"\n")


def test_follows_appends_and_keeps_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    f = Follower(log, tmp_path / "pos.json", from_start=True)
    assert f.poll() == []  # no file yet
    write(log, b"one", b"two")
    with log.open("ab") as out:
        out.write(b"thr")
    assert f.poll() == [b"one", b"two"]
    with log.open("ab") as out:
        out.write(b"ee\n")
    assert f.poll() == [b"three"]
    assert f.poll() == []


def test_lines_cut_by_every_read_come_out_whole(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    lines = [b"x" * (i % 13) + str(i).encode() for i in range(200)] + [b"", b"last"]
    write(log, *lines)
    for budget in (1, 7, 64, 4096):
        f = Follower(log, tmp_path / f"pos-{budget}.json", from_start=True, max_read=budget)
        got: list[bytes] = []
        for _ in range(log.stat().st_size // budget + 2):
            got += f.poll()
        assert got == lines, budget
        f.close()


def test_a_new_file_is_read_from_its_end_unless_from_start(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, b"old")
    f = Follower(log, tmp_path / "pos.json")
    assert f.poll() == []
    write(log, b"new")
    assert f.poll() == [b"new"]


def test_rotation_by_rename_reads_the_rest_of_the_old_file(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, b"a")
    f = Follower(log, tmp_path / "pos.json", from_start=True, grace=0.0)
    assert f.poll() == [b"a"]
    write(log, b"b")
    os.rename(log, tmp_path / "access.log.1")
    write(tmp_path / "access.log.1", b"c")  # the writer has not reopened yet
    write(log, b"d")
    got = f.poll() + f.poll()
    assert got == [b"b", b"c", b"d"]
    assert f.rotations == 1


def test_copytruncate_starts_again_from_the_top(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, b"first line", b"second line")
    f = Follower(log, tmp_path / "pos.json", from_start=True)
    assert len(f.poll()) == 2
    with log.open("r+b") as out:
        out.truncate(0)
    write(log, b"x")
    assert f.poll() == [b"x"]
    assert f.truncations == 1


def test_restart_continues_where_it_stopped_even_after_a_rotation(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    pos = tmp_path / "pos.json"
    write(log, b"1", b"2")
    f = Follower(log, pos, from_start=True)
    assert f.poll() == [b"1", b"2"]
    f.save()
    f.close()
    write(log, b"3")
    again = Follower(log, pos)
    assert again.poll() == [b"3"]
    again.save()
    again.close()
    write(log, b"4")
    os.rename(log, tmp_path / "access.log.1")
    write(log, b"5")
    third = Follower(log, pos, grace=0.0)
    assert third.poll() == [b"4", b"5"]


class FlakyConsole:
    """A transport whose console is away until `up` is set."""

    def __init__(self) -> None:
        self.up = False
        self.records: list[str] = []
        self.unparsed: list[tuple[str, int, str, str]] = []

    async def post(self, body: bytes) -> Reply:
        if not self.up:
            raise ConsoleUnreachable("connection refused")
        batch = decode_batch(body)
        self.records += [r.request_id for r in batch.records]
        self.unparsed = batch.unparsed
        return Reply(200, orjson.dumps({"accepted": len(batch.records)}))

    async def close(self) -> None:
        pass


async def test_tail_spools_while_the_console_is_away_then_replays_in_order(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.log"
    lines = (SAMPLES / "nginx_json_analytics_access_log.ndjson").read_bytes().splitlines()
    console = FlakyConsole()
    shipper = Shipper(
        "http://127.0.0.1:9", "hcn_x", tmp_path / "spool", transport=console, retry_max=0.05
    )
    follower = Follower(log, tmp_path / "pos.json", from_start=True)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_tail(follower, FORMATS["nginx-json"], unrouted, shipper, stop, interval=0.01)
    )
    write(log, lines[0], b"garbage")
    await wait_until_async(lambda: shipper.spooled_batches >= 1, 30, "a spooled batch")
    write(log, lines[1], lines[2])
    await wait_until_async(lambda: shipper.spooled_batches >= 2, 30, "a second spooled batch")
    console.up = True
    await wait_until_async(lambda: len(console.records) == 3, 30, "the replay")
    stop.set()
    stats = await task
    assert console.records == [orjson.loads(line)["request_id"] for line in lines]
    assert stats.lines == 4 and stats.records == 3
    ((source, total, sample, reason),) = console.unparsed
    assert source == f"nginx-json:{log}" and total == 1 and sample == "garbage"
    assert reason == "not JSON"
    assert shipper.dropped_total == 0 and shipper.spooled_batches == 0
    assert orjson.loads((tmp_path / "pos.json").read_bytes())["offset"] == log.stat().st_size
    assert gc.isenabled()  # collection was paused per batch only


def test_collection_is_paused_inside_and_restored_after() -> None:
    from hypercare.telemetry.tail import _collection_paused

    assert gc.isenabled()
    with _collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with _collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


def test_the_tail_command_says_what_is_missing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hypercare.cli import app

    runner = CliRunner()
    log = str(tmp_path / "access.log")
    env = {"HYPERCARE_CONSOLE_URL": "", "HYPERCARE_NODE_TOKEN": ""}
    r = runner.invoke(app, ["tail", log, "--format", "kong"], env=env)
    assert r.exit_code != 0 and "nginx-json, envoy-json, traefik-json" in r.output
    r = runner.invoke(app, ["tail", log, "--format", "nginx-json"], env=env)
    assert r.exit_code != 0 and "HYPERCARE_CONSOLE_URL" in r.output
    r = runner.invoke(
        app,
        [
            *("tail", log, "--format", "nginx-json", "--console-url", "http://x"),
            *("--token", "t", "--config", str(tmp_path / "missing.yaml")),
        ],
        env=env,
    )
    assert r.exit_code != 0 and "missing.yaml" in r.output
    r = runner.invoke(
        app,
        ["tail", log, "--format", "nginx-json", "--console-url", "ftp://x", "--token", "t"],
        env=env,
    )
    assert r.exit_code != 0 and "http://HOST" in r.output
