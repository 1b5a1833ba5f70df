"""Redaction of captured headers, query strings and bodies.

The gateway worker redacts a capture before it leaves the worker, and the console redacts
it again before storing it (so a capture from an older or foreign node is safe too).

Headers whose names match a configured name or glob (Authorization, Cookie, Set-Cookie,
API-key headers, ``*password*``, ``*secret*``, ``*token*``...) and fields whose names
match configured glob patterns (``password``, ``*token*``, ``card*``...) become
``[REDACTED]``: fields of JSON bodies at any depth, of form-urlencoded bodies, of
multipart/form-data parts and of the query string. Anything else (truncated JSON, text) is
scanned for ``"name": value`` and ``name=value`` pairs with a matching name. Binary bodies
are not stored, only their size.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

from hypercare.telemetry.config import DEFAULT_REDACT_FIELDS, DEFAULT_REDACT_HEADERS

REDACTED = "[REDACTED]"

_SURROGATE = re.compile("[\udc80-\udcff]")
_KNOWN_MAX = 4096  # field names whose verdict is remembered
_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]{1,200})"|([^\s;]{1,200}))', re.IGNORECASE)
_PART_NAME = re.compile(r'(?:^|;)\s*name\s*=\s*(?:"([^"]*)"|([^\s;]*))', re.IGNORECASE)


def _names(patterns: list[str], char: str) -> str:
    """Glob patterns (``*``, ``?``) as one regex alternation over names made of `char`."""
    alts = []
    for p in patterns:
        parts = (f"{char}{{0,200}}" if c == "*" else char if c == "?" else re.escape(c) for c in p)
        alts.append("".join(parts))
    return "|".join(alts) or "(?!)"


def _literal(pattern: str) -> str:
    """The longest run of plain characters in a glob ("" when it has none)."""
    return max(re.split(r"[*?]", pattern), key=len)


def _globs(patterns: Iterable[str]) -> re.Pattern[str]:
    cleaned = [p.strip().lower() for p in patterns if p.strip()]
    if not cleaned:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in cleaned), re.IGNORECASE)


class Redactor:
    """Redaction rules compiled once from configuration."""

    def __init__(self, headers: Iterable[str] = (), fields: Iterable[str] = ()) -> None:
        self._header = _globs((*DEFAULT_REDACT_HEADERS, *headers))
        self._field = _globs((*DEFAULT_REDACT_FIELDS, *fields))
        self._known: dict[str, bool] = {}
        self._known_headers: dict[str, bool] = {}
        patterns = [p.strip() for p in (*DEFAULT_REDACT_FIELDS, *fields) if p.strip()]
        # in text: a quoted name matching a pattern, then its JSON value (string, number,
        # literal); and name=value. Only secret names match, so text without any costs one
        # scan in C and no Python call per pair.
        quoted = _names(patterns, r'[^"\\]')
        bare = _names(patterns, r"[\w.\-\[\]]")
        self._json_pair = re.compile(
            rf'("(?:{quoted})"\s*:\s*)(?:"(?:[^"\\]|\\.)*"?|[^,}}\]\s]+)', re.IGNORECASE
        )
        # a delimiter first (the text gets a leading space), then only names followed by
        # "=": most positions fail on the first character or the lookahead
        self._kv_pair = re.compile(
            rf"([?&;\s,](?=[\w.\-\[\]]{{1,200}}=)(?:{bare})=)[^&;\s,]*", re.IGNORECASE
        )
        # every secret name holds one of these: text without any has no pair to redact
        self._literals = tuple({_literal(p.lower()) for p in patterns})

    def secret_field(self, name: str) -> bool:
        # the same few names recur in every body: remember the answer (bounded)
        known = self._known.get(name)
        if known is None:
            known = bool(self._field.fullmatch(name.lower()))
            if len(self._known) >= _KNOWN_MAX:
                self._known.clear()
            self._known[name] = known
        return known

    def secret_header(self, name: str) -> bool:
        known = self._known_headers.get(name)
        if known is None:
            lname = name.lower()
            known = bool(self._header.fullmatch(lname)) or self.secret_field(lname)
            if len(self._known_headers) >= _KNOWN_MAX:
                self._known_headers.clear()
            self._known_headers[name] = known
        return known

    def redact_headers(self, headers: Iterable[tuple[str, str]]) -> list[list[str]]:
        return [[name, REDACTED if self.secret_header(name) else value] for name, value in headers]

    def redact_header_pairs(
        self, headers: Iterable[tuple[str, str]]
    ) -> tuple[tuple[str, str], ...]:
        """`redact_headers` as (name, value) tuples."""
        secret = self.secret_header
        return tuple((name, REDACTED if secret(name) else value) for name, value in headers)

    def redact_value(self, value: Any) -> Any:
        """Redact a parsed JSON value at any depth (string values holding ``name=value``
        or ``"name": value`` pairs included)."""
        if isinstance(value, dict):
            return {
                k: REDACTED if self.secret_field(str(k)) else self.redact_value(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.redact_value(v) for v in value]
        if isinstance(value, str) and ("=" in value or '"' in value):
            # a URL with a query, an embedded form or JSON document: its pairs too
            return self.redact_text(value)
        return value

    def redact_text(self, text: str) -> str:
        """Best effort for text that is not parseable JSON: redact name/value pairs."""
        lowered = text.lower()
        if not any(lit in lowered for lit in self._literals):
            return text
        if '"' in text:
            text = self._json_pair.sub(rf'\1"{REDACTED}"', text)
        if "=" in text:
            text = self._kv_pair.sub(rf"\1{REDACTED}", f" {text}")[1:]
        return text

    def redact_query(self, query: str) -> str:
        """A query string (or form-urlencoded text) with the values of secret fields
        replaced; everything else is kept as sent, also a pair cut off at the end."""
        if not query:
            return ""
        out = []
        for pair in query.split("&"):
            name, eq, _ = pair.partition("=")
            if self.secret_field(unquote_plus(name)) or (not eq and self.secret_field(name)):
                out.append(f"{name}={REDACTED}")
            else:
                # a name that is not secret may still hide "secret=..." in a mangled pair
                out.append(self.redact_text(pair))
        return "&".join(out)

    def redact_multipart(self, text: str, boundary: str) -> str:
        """multipart/form-data with each part redacted by its field name (a secret part's
        content becomes the marker) or, for other parts, by its own content; a part cut off
        at the end of a truncated body is treated the same."""
        delimiter = f"--{boundary}"
        pieces = text.split(delimiter)
        out = [self.redact_text(pieces[0])]  # the preamble
        for piece in pieces[1:]:
            head, sep, content = piece.partition("\r\n\r\n")
            if not sep:
                # no content yet (the closing "--", or a head cut off): only headers
                out.append(self.redact_text(head))
                continue
            disposition = next(
                (
                    line.partition(":")[2]
                    for line in head.split("\r\n")
                    if line.lower().startswith("content-disposition:")
                ),
                "",
            )
            m = _PART_NAME.search(disposition)
            name = (m.group(1) if m.group(1) is not None else m.group(2)) if m else ""
            # the line break before the next delimiter belongs to the delimiter
            end = "\r\n" if content.endswith("\r\n") else ""
            content = content[: len(content) - len(end)]
            if name and self.secret_field(name):
                out.append(f"{head}\r\n\r\n{REDACTED}{end}")
                continue
            part_type = next(
                (
                    line.partition(":")[2].strip()
                    for line in head.split("\r\n")
                    if line.lower().startswith("content-type:")
                ),
                "",
            )
            if _has_surrogates(content):
                body = f"[binary part, {len(content.encode('utf-8', 'surrogateescape'))} bytes]"
            else:
                body = self._redact_text_body(content, part_type)
            out.append(f"{head}\r\n\r\n{body}{end}")
        # bytes that were not UTF-8 outside the parts' contents: "?" (never a lone surrogate)
        return delimiter.join(out).encode("utf-8", "replace").decode("utf-8")

    def redact_body(
        self, body: bytes, content_type: str = "", *, truncated: bool = False
    ) -> str | None:
        """The body as text safe to store, or None when empty. `truncated`: the body is the
        start of a longer one (a character cut in two at its end is dropped, not taken for
        binary data)."""
        if not body:
            return None
        ctype = content_type.lower()
        boundary = (
            _boundary(content_type, body) if "multipart/" in ctype or body[:2] == b"--" else ""
        )
        if boundary:
            return self.redact_multipart(body.decode("utf-8", "surrogateescape"), boundary)
        text = _text(body, truncated)
        if text is None:
            return f"[binary body, {len(body)} bytes, not stored]"
        return self._redact_text_body(text, ctype)

    def _redact_text_body(self, text: str, ctype: str) -> str:
        stripped = text.lstrip()
        if stripped[:1] in ("{", "["):
            try:
                return json.dumps(self.redact_value(json.loads(text)), ensure_ascii=False)
            except (ValueError, RecursionError):
                # not JSON after all, or nested too deep to walk: its pairs, as text
                return self.redact_text(text)
        if "application/x-www-form-urlencoded" in ctype.lower():
            return self.redact_query(text)
        return self.redact_text(text)


def _boundary(content_type: str, body: bytes) -> str:
    """The multipart boundary: from the content type, else from the body's first line when
    the body looks like form data (a missing or wrong header must not hide its fields)."""
    m = _BOUNDARY.search(content_type)
    if m is not None:
        boundary = m.group(1) if m.group(1) is not None else m.group(2)
        if b"--" + boundary.encode("latin-1", "replace") in body:
            return boundary
    end = body.find(b"\r\n")
    if body[:2] == b"--" and 2 < end <= 202 and b"content-disposition:" in body[:1024].lower():
        return body[2:end].decode("latin-1")
    return ""


def _has_surrogates(text: str) -> bool:
    """Whether decoding with "surrogateescape" met bytes that are not UTF-8."""
    return _SURROGATE.search(text) is not None


def _text(body: bytes, truncated: bool) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # the body was cut inside a multi-byte character: keep what is before it
        if truncated and exc.start >= len(body) - 3 and exc.end == len(body):
            try:
                return body[: exc.start].decode("utf-8")
            except UnicodeDecodeError:
                return None
        return None
