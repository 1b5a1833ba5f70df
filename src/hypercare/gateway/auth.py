"""Consumer authentication: API keys (stored only as hashes) and JWT (HS256 / RS256).

Keys from the configuration are hashed with SHA-256 at load and the plain text is dropped; a
presented key is hashed and looked up, and the stored digest compared in constant time. JWTs are
checked for signature, ``exp``, ``nbf``, ``aud`` and ``iss`` with a small leeway. RS256 uses
PKCS#1 v1.5 verification (RFC 8017 §8.2.2) with Python integers, so no crypto dependency.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class AuthError(Exception):
    """Why a credential was refused; `reason` is a short machine word for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _digest(key: str | bytes) -> bytes:
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).digest()


class KeyStore:
    """API key → consumer name, holding only SHA-256 digests of the keys."""

    def __init__(self, consumers: Iterable[tuple[str, Iterable[str]]]) -> None:
        self._by_digest: dict[bytes, tuple[bytes, str]] = {}
        for name, keys in consumers:
            for k in keys:
                d = _digest(k)
                self._by_digest[d] = (d, name)

    def lookup(self, key: bytes) -> str | None:
        """The consumer owning `key`, or None."""
        d = _digest(key)
        found = self._by_digest.get(d)
        if found is None or not hmac.compare_digest(found[0], d):
            return None
        return found[1]

    def __len__(self) -> int:
        return len(self._by_digest)


def _b64url(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise AuthError("malformed", "the token is not valid base64url") from None


@dataclass(frozen=True, slots=True)
class RsaPublicKey:
    n: int
    e: int

    @classmethod
    def from_pem(cls, pem: str) -> RsaPublicKey:
        """Read a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo) or ``RSA PUBLIC KEY`` (PKCS#1).

        Raises ValueError for anything else.
        """
        lines = [ln.strip() for ln in pem.strip().splitlines()]
        if not lines or not lines[0].startswith("-----BEGIN") or "PUBLIC KEY" not in lines[0]:
            raise ValueError("not a PEM public key")
        body = "".join(ln for ln in lines if ln and not ln.startswith("-----"))
        try:
            der = base64.b64decode(body, validate=True)
            if "RSA PUBLIC KEY" not in lines[0]:
                # SubjectPublicKeyInfo: SEQUENCE { SEQUENCE { oid, NULL }, BIT STRING { pkcs1 } }
                _, spki, _ = _der(der, 0)
                _, _algo, pos = _der(spki, 0)
                _, bits, _ = _der(spki, pos)
                der = bits[1:]  # skip the unused-bits byte
            _, seq, _ = _der(der, 0)
            _, n, pos = _der(seq, 0)
            _, e, _ = _der(seq, pos)
        except (ValueError, IndexError):
            raise ValueError("not a DER-encoded RSA public key") from None
        key = cls(int.from_bytes(n), int.from_bytes(e))
        if key.n.bit_length() < 1024 or key.e < 3:
            raise ValueError("RSA public keys must have at least 1024 bits")
        return key

    def verify_sha256(self, message: bytes, signature: bytes) -> bool:
        k = (self.n.bit_length() + 7) // 8
        if len(signature) != k:
            return False
        s = int.from_bytes(signature)
        if s >= self.n:
            return False
        em = pow(s, self.e, self.n).to_bytes(k)
        # EMSA-PKCS1-v1_5 with the DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
        info = (
            bytes.fromhex("3031300d060960864801650304020105000420")
            + hashlib.sha256(message).digest()
        )
        expected = b"\x00\x01" + b"\xff" * (k - len(info) - 3) + b"\x00" + info
        return hmac.compare_digest(em, expected)


def _der(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, content, next position) of the DER element at `pos`."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos : pos + n])
        pos += n
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, data[pos : pos + length], pos + length


class JwtVerifier:
    """Checks a compact JWS and returns its claims; refuses `alg: none` and unknown algorithms."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 30.0,
        consumer_claim: str = "sub",
    ) -> None:
        self._secret = secret.encode() if secret is not None else None
        self._rsa = RsaPublicKey.from_pem(public_key) if public_key else None
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway
        self.consumer_claim = consumer_claim

    def verify(self, token: str, now: float | None = None) -> Mapping[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise AuthError("malformed", "the token must have three dot-separated parts")
        try:
            header = json.loads(_b64url(parts[0]))
            claims = json.loads(_b64url(parts[1]))
        except ValueError:
            raise AuthError("malformed", "the token header or claims are not JSON") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise AuthError("malformed", "the token header and claims must be JSON objects")
        signed = f"{parts[0]}.{parts[1]}".encode()
        sig = _b64url(parts[2])
        alg = header.get("alg")
        if alg == "HS256" and self._secret is not None:
            good = hmac.compare_digest(hmac.new(self._secret, signed, hashlib.sha256).digest(), sig)
        elif alg == "RS256" and self._rsa is not None:
            good = self._rsa.verify_sha256(signed, sig)
        else:
            raise AuthError("bad_algorithm", f"algorithm {alg!r} is not accepted")
        if not good:
            raise AuthError("bad_signature", "the token signature is invalid")
        now = time.time() if now is None else now
        exp = claims.get("exp")
        if exp is not None and (not isinstance(exp, int | float) or now > exp + self._leeway):
            raise AuthError("expired", "the token has expired")
        nbf = claims.get("nbf")
        if nbf is not None and (not isinstance(nbf, int | float) or now + self._leeway < nbf):
            raise AuthError("not_yet_valid", "the token is not valid yet")
        if self._audience is not None:
            aud = claims.get("aud")
            auds = aud if isinstance(aud, list) else [aud]
            if self._audience not in auds:
                raise AuthError("bad_audience", "the token is not meant for this audience")
        if self._issuer is not None and claims.get("iss") != self._issuer:
            raise AuthError("bad_issuer", "the token issuer is not trusted")
        return claims
