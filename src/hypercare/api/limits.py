"""Bound every request before an endpoint sees it: body size, NUL characters, JSON depth."""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _too_large(limit: int) -> bytes:
    return json.dumps(
        {
            "error": {
                "code": "payload_too_large",
                "message": f"request body over the limit of {limit} bytes; send less data",
                "details": {"limit": limit},
            }
        }
    ).encode()


class BodyLimit:
    """ASGI middleware: 413 when Content-Length says too much, or when a streamed
    (chunked) body passes the limit while it is read."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, per_path: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # paths with a limit of their own (OTLP exports are bigger than API requests)
        self.per_path = dict(per_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.max_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await self._reject(send, limit)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._reject(send, limit)

    async def _reject(self, send: Send, limit: int) -> None:
        body = _too_large(limit)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


MAX_JSON_DEPTH = 100
"""Deepest JSON nesting a request body may have. Real payloads (Sentry events included) stay
under 20; the parsers and pydantic recurse once per level and fail with RecursionError near
Python's limit of 1000, so the limit sits well below that."""

_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
# opening brackets become +1, closing ones -1 (as signed bytes)
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_depth(body: bytes) -> int:
    """How deep the JSON text `body` nests (0 for a scalar); for text that is not JSON a
    meaningless but finite number (the parser rejects such a body afterwards anyway).

    >>> json_depth(b'{"a": [1, {"b": "]]"}]}')
    3
    """
    # drop escaped backslashes, then escaped quotes: every quote left opens or closes a
    # string, so the text outside strings is every other piece between quotes
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(unescaped.split(b'"')[::2]).translate(None, _BRACKETS)
    steps = memoryview(brackets.translate(_DEPTH_STEP)).cast("b")
    return max(itertools.accumulate(steps), default=0)


def input_problem(path: str, query: bytes, content_type: str, body: bytes) -> str | None:
    """Why a request cannot be taken in, or None: a NUL character in the path, the query or
    a form (the text columns of PostgreSQL cannot hold one), or a JSON body nested deeper
    than `MAX_JSON_DEPTH`. NUL characters in JSON bodies are the schemas' business
    (`hypercare.bounds.Input`): intake payloads keep theirs, stripped, not refused."""
    if "\x00" in path:
        return "the path holds a NUL character"
    if b"%00" in query or b"\x00" in query:
        return "the query string holds a NUL character (%00)"
    if not body:
        return None
    if body.lstrip()[:1] in (b"{", b"["):
        # the bracket count bounds the depth: most bodies need no closer look
        openers = body.count(b"[") + body.count(b"{")
        if openers > MAX_JSON_DEPTH and json_depth(body) > MAX_JSON_DEPTH:
            return f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels; flatten it"
    elif content_type.startswith("application/x-www-form-urlencoded") and (
        b"%00" in body or b"\x00" in body
    ):
        return "the form holds a NUL character (%00)"
    return None


class InputGuard:
    """ASGI middleware: 422 for input no endpoint can store or parse safely (`input_problem`),
    before any endpoint sees it. Bodies are read here in full; `BodyLimit` (outside this one)
    bounds them.

    `raw_bodies` names paths whose bodies are left alone (path and query are still checked):
    telemetry batches arrive by the thousand, counting their depth costs about as much as
    decoding them, and their decoder (`hypercare.telemetry.wire`) refuses what nests too
    deep itself."""

    def __init__(self, app: ASGIApp, raw_bodies: Collection[str] = ()) -> None:
        self.app = app
        self.raw_bodies = frozenset(raw_bodies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = input_problem(scope["path"], scope["query_string"], "", b"")
        if problem is not None:
            await _refuse(send, problem)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS") or scope["path"] in self.raw_bodies:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        last: Message = {"type": "http.request", "body": b"", "more_body": False}
        while True:
            message = await receive()
            if message["type"] != "http.request":
                last = message  # the client went away: let the app see that
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1").lower()
        problem = input_problem("", b"", content_type, body)
        if problem is not None:
            await _refuse(send, problem)
            return
        pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        if last["type"] != "http.request":
            pending.append(last)

        async def replay() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send, message: str) -> None:
    body = json.dumps(
        {"error": {"code": "invalid_input", "message": message, "details": None}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
