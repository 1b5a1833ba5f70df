"""The gateway side of telemetry: a `RecordSink` that ships call records to the console.

Contract (for the gateway worker that owns one)::

    shipper = Shipper(console_url, node_token, spool_dir)   # plain constructor, no I/O
    await shipper.start()        # on the worker's running loop (asyncio or uvloop)
    shipper.emit(record)         # hot path: O(1), never blocks, never raises
    shipper.emit(record, capture)  # with captured headers/bodies (CallCapture)
    shipper.emit_many(records)   # many at once, without captures (hypercare tail)
    await shipper.close()        # ships (or spools) everything buffered, then stops

`emit` only appends to an in-memory buffer. A background task on the same loop sends a
batch every ``interval`` (250 ms) or as soon as ``batch_records`` records are waiting,
as JSON (`hypercare.telemetry.wire`) to ``POST /api/v1/internal/telemetry`` with the node
token, over one kept-alive HTTP/1.1 connection on the same loop
(`hypercare.telemetry.transport`). A record is *acknowledged* when the console answered 2xx
for its batch; the console answers only after the batch is committed to its store.

When the console cannot be reached (or answers 5xx), the batch is written to the spool
directory, one file per batch, and every later batch goes behind it: the spool is replayed
oldest first when the console is back, so order is kept. Each batch carries a unique key,
so a batch re-sent after a lost answer is stored once. The spool is bounded by
``max_spool_bytes``; when a batch does not fit, its records are dropped and counted in
`dropped_total` (reported to the console in every batch, and shown on its /metrics as
``hypercare_telemetry_dropped_total``). The in-memory buffer is bounded by
``max_buffer_records`` the same way. A batch the console rejects as invalid (4xx other
than 401/403/408/429) can never succeed: it is removed and counted in `rejected_total`.

One spool directory belongs to one shipper: give each worker process its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from pathlib import Path

import orjson

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.capture import CallCapture
from hypercare.telemetry.transport import ConsoleUnreachable, HttpTransport, Transport
from hypercare.telemetry.wire import Unparsed, encode_batch

log = logging.getLogger("hypercare.telemetry.shipper")

INGEST_PATH = "/api/v1/internal/telemetry"
_SUFFIX = ".batch"
# a batch must stay under the console's 1 MiB request limit
MAX_BATCH_BYTES = 900 * 1024


class Shipper:
    def __init__(
        self,
        console_url: str,
        node_token: str,
        spool_dir: Path,
        *,
        interval: float = 0.25,
        batch_records: int = 3000,
        max_buffer_records: int = 100_000,
        max_spool_bytes: int = 256 * 1024 * 1024,
        timeout: float = 5.0,
        retry_max: float = 5.0,
        transport: Transport | None = None,
    ) -> None:
        self.console_url = console_url.rstrip("/")
        self.spool_dir = Path(spool_dir)
        self.interval = interval
        self.batch_records = batch_records
        self.max_buffer_records = max_buffer_records
        self.max_spool_bytes = max_spool_bytes
        self.timeout = timeout
        self.retry_max = retry_max
        self._token = node_token
        self._records: list[CallRecord] = []
        self._captures: dict[int, CallCapture] = {}
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._transport = transport
        self._started = False
        self._spool: list[tuple[int, Path, int]] = []  # (seq, file, bytes), oldest first
        self._seq = 0
        self._retry_at = 0.0
        self._backoff = 0.0
        self.spool_bytes = 0
        self.dropped_total = 0
        self.rejected_total = 0
        self.sent_records = 0
        self.sent_batches = 0
        # what an access-log reader (hypercare tail) reports with every batch
        self.unparsed: list[Unparsed] = []
        self._cycling = asyncio.Lock()

    # --- hot path -----------------------------------------------------------------------

    def emit(self, record: CallRecord, capture: CallCapture | None = None) -> None:
        """Buffer one record (and its capture). Never blocks; drops and counts when full."""
        if len(self._records) >= self.max_buffer_records or self._closing:
            self.dropped_total += 1
            return
        if capture is not None:
            self._captures[len(self._records)] = capture
        self._records.append(record)
        if len(self._records) >= self.batch_records:
            self._wake.set()

    def emit_many(self, records: list[CallRecord]) -> None:
        """`emit` each of `records` (without captures), in one step: what does not fit in
        the buffer is dropped and counted, as `emit` would."""
        room = 0 if self._closing else max(0, self.max_buffer_records - len(self._records))
        if len(records) > room:
            self.dropped_total += len(records) - room
            records = records[:room]
        self._records.extend(records)
        if len(self._records) >= self.batch_records:
            self._wake.set()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._spool = await asyncio.to_thread(self._scan)
        self.spool_bytes = sum(size for _, _, size in self._spool)
        self._seq = self._spool[-1][0] if self._spool else 0
        if self._transport is None:
            self._transport = HttpTransport(
                self.console_url,
                INGEST_PATH,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self.timeout,
            )
        self._started = True
        self._task = asyncio.create_task(self._run(), name="telemetry-shipper")

    async def close(self) -> None:
        """Ship or spool everything buffered, then stop. Safe to call twice."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._transport is not None:
            await self._transport.close()

    async def flush(self) -> None:
        """Ship what is buffered now; when it returns, each of those records is
        acknowledged by the console, spooled, or counted in `dropped_total`."""
        if self._task is None:
            raise RuntimeError("start() the shipper before flushing it")
        async with self._cycling:
            await self._cycle()

    @property
    def buffered(self) -> int:
        return len(self._records)

    @property
    def spooled_batches(self) -> int:
        return len(self._spool)

    # --- background ---------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()
            closing = self._closing
            try:
                async with self._cycling:
                    await self._cycle(final=closing)
            except Exception:
                # a failing cycle must not end shipping; records stay buffered or spooled
                log.exception("telemetry shipping cycle failed")
            if closing:
                return

    def _take(self) -> list[tuple[bytes, int]]:
        records, captures = self._records, self._captures
        self._records, self._captures = [], {}
        out: list[tuple[bytes, int]] = []
        for i in range(0, len(records), self.batch_records):
            part = records[i : i + self.batch_records]
            caps = {k - i: c for k, c in captures.items() if i <= k < i + len(part)}
            out.extend(self._encode(part, caps))
        return out

    def _encode(
        self, records: list[CallRecord], caps: dict[int, CallCapture]
    ) -> list[tuple[bytes, int]]:
        body = encode_batch(
            uuid.uuid4().hex,
            records,
            caps,
            sent_at=time.time(),
            dropped_total=self.dropped_total,
            spool_bytes=self.spool_bytes,
            unparsed=self.unparsed,
        )
        if len(body) <= MAX_BATCH_BYTES or len(records) == 1:
            return [(body, len(records))]
        half = len(records) // 2
        left = {k: c for k, c in caps.items() if k < half}
        right = {k - half: c for k, c in caps.items() if k >= half}
        return self._encode(records[:half], left) + self._encode(records[half:], right)

    async def _cycle(self, *, final: bool = False) -> None:
        batches = self._take()
        if self._spool or time.monotonic() < self._retry_at:
            for body, n in batches:
                await self._to_spool(body, n)
            batches = []
        if self._spool and (final or time.monotonic() >= self._retry_at):
            await self._replay()
        for i, (body, _) in enumerate(batches):
            if not await self._send(body):
                for rest, n in batches[i:]:
                    await self._to_spool(rest, n)
                return

    async def _send(self, body: bytes) -> bool:
        """POST one batch; True when acknowledged or permanently rejected (not to retry)."""
        if self._transport is None or not self._started:
            raise RuntimeError("start() the shipper before it ships")
        try:
            status, answer = await self._transport.post(body)
        except ConsoleUnreachable as exc:
            self._failed(f"console unreachable: {exc}")
            return False
        if 200 <= status < 300:
            self._backoff = 0.0
            self._retry_at = 0.0
            self.sent_batches += 1
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                self.sent_records += int(orjson.loads(answer).get("accepted", 0))
            return True
        text = answer.decode("utf-8", "replace")
        if status in (401, 403, 408, 429) or status >= 500:
            self._failed(f"console answered {status}: {text[:200]}")
            return False
        self.rejected_total += 1
        log.error("console rejected a telemetry batch (%s): %s", status, text[:500])
        return True

    def _failed(self, why: str) -> None:
        self._backoff = min(self.retry_max, max(self.interval, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff
        log.warning("telemetry: %s; spooling, retry in %.1fs", why, self._backoff)

    async def _replay(self) -> None:
        while self._spool:
            _, path, size = self._spool[0]
            body = await asyncio.to_thread(path.read_bytes)
            if not await self._send(body):
                return
            await asyncio.to_thread(path.unlink, missing_ok=True)
            self._spool.pop(0)
            self.spool_bytes -= size

    async def _to_spool(self, body: bytes, records: int) -> None:
        if self.spool_bytes + len(body) > self.max_spool_bytes:
            self.dropped_total += records
            log.error(
                "telemetry spool full (%d bytes): %d record(s) dropped", self.spool_bytes, records
            )
            return
        self._seq += 1
        path = self.spool_dir / f"{self._seq:016d}{_SUFFIX}"
        await asyncio.to_thread(_write_atomic, path, body)
        self._spool.append((self._seq, path, len(body)))
        self.spool_bytes += len(body)

    def _scan(self) -> list[tuple[int, Path, int]]:
        found = []
        for p in self.spool_dir.glob(f"*{_SUFFIX}"):
            if p.stem.isdigit():
                found.append((int(p.stem), p, p.stat().st_size))
        for p in self.spool_dir.glob("*.tmp"):
            p.unlink(missing_ok=True)  # a write cut short: its records were never spooled
        return sorted(found)


def _write_atomic(path: Path, body: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def shipper_from_env(spool_dir: Path) -> Shipper | None:
    """A shipper for a gateway worker started by `hypercare up`, which exports
    HYPERCARE_CONSOLE_URL and HYPERCARE_NODE_TOKEN; None when they are not set."""
    url = os.environ.get("HYPERCARE_CONSOLE_URL")
    token = os.environ.get("HYPERCARE_NODE_TOKEN")
    if not url or not token:
        return None
    return Shipper(url, token, spool_dir)


def worker_sink(index: int) -> Shipper | None:
    """The `sink_factory` `hypercare up` gives its gateway workers: worker `index` ships to
    the console with the exported node token and spools under HYPERCARE_SPOOL_DIR/worker-N."""
    spool_root = os.environ.get("HYPERCARE_SPOOL_DIR")
    if not spool_root:
        return None
    return shipper_from_env(Path(spool_root) / f"worker-{index}")
