"""`hypercare tail`: follow a gateway's access log and ship its lines as call records.

    follower = Follower(Path("/var/log/nginx/access.log"), state_dir / "position.json")
    lines = follower.poll()      # complete new lines (bytes), across rotations
    ...                          # parse, hand to the shipper, flush it
    follower.save()              # the position after those lines, kept across restarts

Following: the file is read from where the last run stopped (its device, inode and offset are
kept in ``position.json``); a file never seen before is read from its end (``from_start``:
from its beginning). When the file is renamed away (logrotate's default) the rest of the old
file is read for ``grace`` seconds more — the writer keeps writing there until it reopens its
log — while the new file is read from its start. When the file shrinks below the position
(logrotate's ``copytruncate``) it is read again from its start. A restart after a rotation
finds the renamed file by its inode in the same directory and reads the rest of it first.

Shipping is the gateway shipper's (`hypercare.telemetry.shipper.Shipper`): the same batches,
the same spool when the console is away, replay in order, counts of drops. The position is
saved only after the shipper flushed the lines read (acknowledged, spooled or counted as
dropped), so a restart neither loses nor repeats lines (a line may repeat if the process dies
between a flush and the save; its batch key differs, so it is stored twice: rare and bounded
by one read of ``max_read`` bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hypercare.telemetry.accesslog import Adapter, Match, Rejects, parse_lines
from hypercare.telemetry.accesslog.base import RouteMemo
from hypercare.telemetry.shipper import Shipper

log = logging.getLogger("hypercare.tail")

MAX_READ = 4 * 1024 * 1024  # bytes read per poll (about 10,000 lines of nginx's JSON)
MAX_LINE = 64 * 1024  # a longer "line" is cut there and counted as not matching


@dataclass
class _Open:
    fd: int
    dev: int
    ino: int
    offset: int  # bytes read from the file so far
    partial: bytes = b""  # the start of a line not complete yet
    until: float = 0.0  # for a rotated file: read until then, then close

    @property
    def position(self) -> int:
        return self.offset - len(self.partial)


@dataclass
class Follower:
    path: Path
    state_file: Path
    from_start: bool = False
    grace: float = 5.0
    max_read: int = MAX_READ
    rotations: int = 0
    truncations: int = 0
    _cur: _Open | None = None
    _old: list[_Open] = field(default_factory=list)
    _restored: bool = False

    # --- position ---------------------------------------------------------------------------

    def _saved(self) -> dict[str, int] | None:
        try:
            doc = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("path") != str(self.path):
            return None
        try:
            return {k: int(doc[k]) for k in ("dev", "ino", "offset")}
        except (KeyError, TypeError, ValueError):
            return None

    def save(self) -> None:
        """Keep the position after the lines returned so far (atomically)."""
        cur = self._cur
        if cur is None:
            return
        doc = {"path": str(self.path), "dev": cur.dev, "ino": cur.ino, "offset": cur.position}
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.state_file)

    # --- reading ----------------------------------------------------------------------------

    def _open(self, path: Path, offset: int | None) -> _Open | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        st = os.fstat(fd)
        if offset is None or offset > st.st_size:
            offset = st.st_size if offset is None else 0
        os.lseek(fd, offset, os.SEEK_SET)
        return _Open(fd, st.st_dev, st.st_ino, offset)

    def _start(self) -> None:
        """First open: where the last run stopped (maybe in a renamed file), else the end
        (``from_start``: the beginning)."""
        self._restored = True
        saved = self._saved()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if saved is None:
            self._cur = self._open(self.path, 0 if self.from_start else None)
            return
        if st is not None and (st.st_dev, st.st_ino) == (saved["dev"], saved["ino"]):
            self._cur = self._open(self.path, saved["offset"])
            return
        # rotated while we were away: finish the renamed file first
        rotated = self._find(saved["dev"], saved["ino"])
        if rotated is not None:
            old = self._open(rotated, saved["offset"])
            if old is not None:
                old.until = time.monotonic() + self.grace
                self._old.append(old)
                self.rotations += 1
        self._cur = self._open(self.path, 0)

    def _find(self, dev: int, ino: int) -> Path | None:
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.path.parent):
                if entry.name.startswith(self.path.name):
                    st = entry.stat(follow_symlinks=False)
                    if (st.st_dev, st.st_ino) == (dev, ino):
                        return Path(entry.path)
        return None

    def _read(self, f: _Open, budget: int, out: list[bytes]) -> int:
        """Read up to `budget` bytes of `f`, append its complete lines; bytes read."""
        got = 0
        while got < budget:
            chunk = os.read(f.fd, min(1024 * 1024, budget - got))
            if not chunk:
                break
            got += len(chunk)
            f.offset += len(chunk)
            # split the chunk itself (no copy of it joined to the partial line): the partial
            # line starts the first piece, the last piece is the next partial line
            lines = chunk.split(b"\n")
            if f.partial:
                lines[0] = f.partial + lines[0]
            f.partial = lines.pop()
            out.extend(lines)
            if len(f.partial) > MAX_LINE:  # no newline for too long: pass it on as it is
                out.append(f.partial)
                f.partial = b""
        return got

    def poll(self) -> list[bytes]:
        """The complete lines written since the last poll (oldest first)."""
        if not self._restored:
            self._start()
        out: list[bytes] = []
        budget = self.max_read
        now = time.monotonic()
        for old in list(self._old):
            budget -= self._read(old, budget, out)
            if now >= old.until and budget > 0:
                if old.partial:
                    out.append(old.partial)
                os.close(old.fd)
                self._old.remove(old)
        if self._cur is None:
            self._cur = self._open(self.path, 0)  # created after we started: all of it
            if self._cur is None:
                return out
        cur = self._cur
        if budget <= 0 or self._read(cur, budget, out) > 0:
            return out
        # at the end of the file: was it rotated or truncated?
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) != (cur.dev, cur.ino):
            cur.until = now + self.grace
            self._old.append(cur)
            self.rotations += 1
            self._cur = self._open(self.path, 0)
            if self._cur is not None:
                self._read(self._cur, budget, out)
        elif os.fstat(cur.fd).st_size < cur.offset:
            self.truncations += 1
            os.lseek(cur.fd, 0, os.SEEK_SET)
            cur.offset, cur.partial = 0, b""
            self._read(cur, budget, out)
        return out

    def close(self) -> None:
        for f in [*self._old, *([self._cur] if self._cur else [])]:
            with contextlib.suppress(OSError):
                os.close(f.fd)
        self._old, self._cur = [], None


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """Automatic garbage collection paused inside, restored after. While a batch of lines is
    parsed and shipped, its thousands of records are all alive until the shipper has encoded
    them; the collections their allocation would trigger could only walk them in vain (about
    a sixth of the tail's CPU). Nothing else runs in the tail process meanwhile, and the
    garbage of one batch is collected after it."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@dataclass
class TailStats:
    lines: int = 0
    records: int = 0


async def run_tail(
    follower: Follower,
    adapter: Adapter,
    match: Match,
    shipper: Shipper,
    stop: asyncio.Event,
    *,
    interval: float = 0.25,
    stats: TailStats | None = None,
    report_every: float = 60.0,
) -> TailStats:
    """Follow, parse, ship and save the position until `stop` is set, then ship or spool
    what was read and save the position a last time. Logs its counts every `report_every`
    seconds. `match`'s answers are remembered per (host, method, path) while that pays
    (`RouteMemo`)."""
    stats = stats or TailStats()
    memo = RouteMemo(match)
    rejects = Rejects()
    source = f"{adapter.name}:{follower.path}"
    await shipper.start()
    next_report = time.monotonic() + report_every
    try:
        while True:
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + report_every
                bad = rejects.sources.get(source)
                log.info(
                    "%s: %d line(s), %d record(s), %d not read, %d dropped, %d rotation(s), "
                    "%d batch(es) spooled",
                    follower.path,
                    stats.lines,
                    stats.records,
                    bad.total if bad else 0,
                    shipper.dropped_total,
                    follower.rotations + follower.truncations,
                    shipper.spooled_batches,
                )
            lines = await asyncio.to_thread(follower.poll)
            if lines:
                stats.lines += len(lines)
                with _collection_paused():
                    records = parse_lines(lines, adapter, memo.for_batch(), rejects, source)
                    memo.after_batch(len(records))
                    stats.records += len(records)
                    shipper.emit_many(records)
                    del records  # the shipper's now: encoded and gone once flushed
                    bad = rejects.sources.get(source)
                    if bad is not None:
                        shipper.unparsed = [(source, bad.total, bad.sample, bad.reason)]
                    await shipper.flush()
                await asyncio.to_thread(follower.save)
                if not stop.is_set():
                    continue  # more may be waiting: read again at once
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
    finally:
        await shipper.close()
        follower.close()
    return stats
