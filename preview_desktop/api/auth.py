"""Constant-time token checks and signed artifact URLs (the token itself is kept by api_token.py).

Signed URLs let a browser or video player open one artifact without the token: an HMAC over the job id, the
file name and an expiry, keyed from the token (regenerating the token invalidates every signed URL).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

SIGNED_URL_SECONDS = 3600  # default lifetime of a signed artifact URL
SIGNED_URL_MAX_SECONDS = 7 * 24 * 3600
_SIGNING_CONTEXT = b"preview-desktop artifact url v1"


def tokens_match(given: str, expected: str) -> bool:
    """Constant-time comparison (timing must not reveal how much of a guess was right)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when absent or another scheme."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for anything else, including names."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host == "localhost"
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


@dataclass(frozen=True)
class Signature:
    exp: int
    sig: str


class UrlSigner:
    """HMAC-SHA256 signatures for artifact URLs, keyed from the API token (never the token itself)."""

    def __init__(self, token: str, clock: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(token.encode("utf-8", "surrogatepass"), _SIGNING_CONTEXT, hashlib.sha256).digest()
        self._clock = clock

    def _mac(self, job_id: str, name: str, exp: int) -> str:
        message = f"{job_id}\n{name}\n{exp}".encode("utf-8", "surrogatepass")
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def sign(self, job_id: str, name: str, seconds: int = SIGNED_URL_SECONDS) -> Signature:
        seconds = max(1, min(SIGNED_URL_MAX_SECONDS, int(seconds)))
        exp = int(self._clock()) + seconds
        return Signature(exp, self._mac(job_id, name, exp))

    def sign_until(self, job_id: str, name: str, exp: int) -> Signature:
        """A signature with an explicit expiry (tests and callers that share one expiry across files)."""
        return Signature(exp, self._mac(job_id, name, exp))

    def verify(self, job_id: str, name: str, exp_text: str, sig: str) -> str | None:
        """None when valid; otherwise why not ("malformed", "expired", "bad signature")."""
        if not exp_text.isdigit() or len(exp_text) > 12:
            return "malformed"
        exp = int(exp_text)
        expected = self._mac(job_id, name, exp)
        if not hmac.compare_digest(expected.encode("ascii"), sig.encode("utf-8", "surrogatepass")):
            return "bad signature"
        if exp < self._clock():
            return "expired"
        return None
