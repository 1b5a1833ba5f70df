"""Redaction of captured headers and bodies, applied by the console before anything is stored.

Secret headers (Authorization, Cookie, Set-Cookie, API-key headers and configured ones)
and body fields whose names match configured glob patterns (``password``, ``*token*``,
``card*``...) become ``[REDACTED]``. JSON bodies are parsed and redacted at any depth;
form bodies field by field; anything else (truncated JSON, text) is scanned for
``"name": value`` and ``name=value`` pairs with a matching name. Binary bodies are not
stored, only their size.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from hypercare.telemetry.config import DEFAULT_REDACT_FIELDS, DEFAULT_REDACT_HEADERS

REDACTED = "[REDACTED]"


class Redactor:
    """Redaction rules compiled once from configuration."""

    def __init__(self, headers: Iterable[str] = (), fields: Iterable[str] = ()) -> None:
        self.headers = {h.strip().lower() for h in (*DEFAULT_REDACT_HEADERS, *headers)}
        patterns = [p.strip().lower() for p in (*DEFAULT_REDACT_FIELDS, *fields) if p.strip()]
        self._field = re.compile(
            "|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), re.IGNORECASE
        )
        # a quoted name matching a pattern, then its JSON value (string, number, literal)
        self._json_pair = re.compile(
            r'("(?P<name>[^"\\]{1,200})"\s*:\s*)(?P<value>"(?:[^"\\]|\\.)*"?|[^,}\]\s]+)'
        )
        self._kv_pair = re.compile(r"(?P<pre>(?:^|[?&;\s,])(?P<name>[\w.\-\[\]]{1,200})=)[^&;\s,]*")

    def secret_field(self, name: str) -> bool:
        return bool(self._field.fullmatch(name.lower()))

    def redact_headers(self, headers: Iterable[tuple[str, str]]) -> list[list[str]]:
        out = []
        for name, value in headers:
            secret = name.lower() in self.headers or self.secret_field(name)
            out.append([name, REDACTED if secret else value])
        return out

    def redact_value(self, value: Any) -> Any:
        """Redact a parsed JSON value at any depth."""
        if isinstance(value, dict):
            return {
                k: REDACTED if self.secret_field(str(k)) else self.redact_value(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.redact_value(v) for v in value]
        return value

    def redact_text(self, text: str) -> str:
        """Best effort for text that is not parseable JSON: redact name/value pairs."""

        def json_sub(m: re.Match[str]) -> str:
            if self.secret_field(m.group("name")):
                return f'{m.group(1)}"{REDACTED}"'
            return m.group(0)

        def kv_sub(m: re.Match[str]) -> str:
            if self.secret_field(m.group("name")):
                return f"{m.group('pre')}{REDACTED}"
            return m.group(0)

        return self._kv_pair.sub(kv_sub, self._json_pair.sub(json_sub, text))

    def redact_body(self, body: bytes, content_type: str = "") -> str | None:
        """The body as text safe to store, or None when empty."""
        if not body:
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return f"[binary body, {len(body)} bytes, not stored]"
        stripped = text.lstrip()
        if stripped[:1] in ("{", "["):
            try:
                parsed = json.loads(text)
            except ValueError:
                return self.redact_text(text)
            return json.dumps(self.redact_value(parsed), ensure_ascii=False)
        if "application/x-www-form-urlencoded" in content_type.lower():
            pairs = parse_qsl(text, keep_blank_values=True)
            return urlencode(
                [(k, REDACTED if self.secret_field(k) else v) for k, v in pairs], safe="[]"
            )
        return self.redact_text(text)
