"""Webhook signatures, as the server signs them (schema/webhook.ts).

HMAC-SHA256 over ``<timestamp>.<body>`` with the batch's webhook secret,
sent as ``v1=<hex>``; a receiver rejects timestamps outside its tolerance,
so that a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from typing import Any, Dict, Mapping, Optional, Union

WEBHOOK_HEADERS: Dict[str, str] = {
    "signature": "x-batch-memory-signature",
    "timestamp": "x-batch-memory-timestamp",
    "event": "x-batch-memory-event",
    "delivery": "x-batch-memory-delivery",
}

#: Default tolerance for the signed timestamp, in seconds.
WEBHOOK_TOLERANCE_SECONDS = 300

# A decimal number as JavaScript's Number() reads one; the server and the
# TypeScript verifier read the timestamp that way, so this one does too.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_PREFIXED = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")


def _as_bytes(value: Union[str, bytes]) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _js_number(text: Optional[str]) -> float:
    if text is None:
        return math.nan
    stripped = text.strip()
    if stripped == "":
        return 0.0
    if _PREFIXED.fullmatch(stripped):
        return float(int(stripped, 0))
    if _DECIMAL.fullmatch(stripped):
        return float(stripped)
    if stripped.lstrip("+-") == "Infinity":
        return -math.inf if stripped.startswith("-") else math.inf
    return math.nan


def _header(headers: Mapping[str, Any], name: str) -> Optional[str]:
    value = headers.get(name)
    if value is None:
        # Plain dicts are case-sensitive; HTTP header names are not.
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == name:
                value = candidate
                break
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return None if value is None else str(value)


def _digest(secret: str, timestamp: int, body: Union[str, bytes]) -> str:
    message = str(timestamp).encode("ascii") + b"." + _as_bytes(body)
    return hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()


def sign_webhook(secret: str, body: Union[str, bytes], timestamp: int) -> Dict[str, str]:
    """Headers that sign ``body`` at ``timestamp`` (Unix seconds), as the
    server would: for tests of a receiver."""
    return {
        WEBHOOK_HEADERS["timestamp"]: str(timestamp),
        WEBHOOK_HEADERS["signature"]: "v1=" + _digest(secret, timestamp, body),
    }


def verify_webhook_signature(
    secret: str,
    headers: Mapping[str, Any],
    body: Union[str, bytes],
    *,
    tolerance_seconds: float = WEBHOOK_TOLERANCE_SECONDS,
    now: Optional[float] = None,
) -> bool:
    """True when the signature matches and the timestamp is within the
    tolerance.

    ``body`` must be the raw request body exactly as received (bytes, or
    the text it decodes to as UTF-8): re-serialised JSON would not match.
    ``now`` is Unix seconds, for tests.
    """
    seconds = _js_number(_header(headers, WEBHOOK_HEADERS["timestamp"]))
    current = time.time() if now is None else now
    if not math.isfinite(seconds) or not seconds.is_integer():
        return False
    if abs(current - seconds) > tolerance_seconds:
        return False
    expected = ("v1=" + _digest(secret, int(seconds), body)).encode("utf-8")
    signature = _header(headers, WEBHOOK_HEADERS["signature"]) or ""
    given = signature.encode("utf-8")
    # compare_digest takes the same time whatever the first difference.
    return len(expected) == len(given) and hmac.compare_digest(expected, given)
