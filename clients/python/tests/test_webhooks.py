"""verify_webhook_signature on a webhook the stack really delivered."""

from __future__ import annotations

import json
import uuid
from typing import Any, Dict, Iterator, Tuple

import httpx
import pytest
from conftest import LocalServer, Stack, memories

from memory_batch import BatchMemoryClient, sign_webhook, verify_webhook_signature

SECRET = "python-webhook-secret-0123"

Delivery = Tuple[Dict[str, str], bytes]


@pytest.fixture(scope="module")
def delivery(stack: Stack) -> Iterator[Delivery]:
    """Headers and raw body of the webhook of one finished batch."""
    signed_up = httpx.post(
        f"{stack.server}/parse/users",
        headers={"X-Parse-Application-Id": stack.app_id},
        json={"username": f"py-hook-{uuid.uuid4()}", "password": "test-password-123"},
        timeout=30,
    ).json()
    receiver = LocalServer(host=stack.webhook_host, status=200)
    try:
        with BatchMemoryClient(
            stack.server, session_token=signed_up["sessionToken"], app_id=stack.app_id
        ) as client:
            batch = client.add(
                memories(3), webhook_url=f"{receiver.url}/hook", webhook_secret=SECRET
            )
            assert receiver.received.wait(120), "no webhook arrived within 120 s"
        _, headers, body = receiver.requests[0]
        assert json.loads(body)["batch"]["batch_id"] == batch["batch_id"]
        yield headers, body
    finally:
        receiver.close()


def timestamp_of(headers: Dict[str, str]) -> int:
    return int(verify_headers(headers)["x-batch-memory-timestamp"])


def verify_headers(headers: Dict[str, str]) -> Dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def test_a_delivered_webhook_verifies(delivery: Delivery) -> None:
    headers, body = delivery
    assert verify_webhook_signature(SECRET, headers, body) is True
    assert verify_webhook_signature(SECRET, headers, body.decode("utf-8")) is True


def test_another_secret_does_not_verify(delivery: Delivery) -> None:
    headers, body = delivery
    assert verify_webhook_signature(SECRET + "x", headers, body) is False


def test_a_tampered_body_does_not_verify(delivery: Delivery) -> None:
    headers, body = delivery
    tampered = body.replace(b'"batch.completed"', b'"batch.failed"')
    assert tampered != body
    assert verify_webhook_signature(SECRET, headers, tampered) is False


def test_a_tampered_signature_or_timestamp_does_not_verify(delivery: Delivery) -> None:
    headers, body = delivery
    plain = verify_headers(headers)
    signature = plain["x-batch-memory-signature"]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert (
        verify_webhook_signature(SECRET, {**plain, "x-batch-memory-signature": flipped}, body)
        is False
    )
    assert (
        verify_webhook_signature(
            SECRET, {**plain, "x-batch-memory-signature": signature[:-1]}, body
        )
        is False
    )
    later = str(timestamp_of(headers) + 1)
    assert (
        verify_webhook_signature(SECRET, {**plain, "x-batch-memory-timestamp": later}, body)
        is False
    )
    unsigned = {k: v for k, v in plain.items() if k != "x-batch-memory-signature"}
    assert verify_webhook_signature(SECRET, unsigned, body) is False


def test_a_stale_timestamp_does_not_verify(delivery: Delivery) -> None:
    headers, body = delivery
    sent = timestamp_of(headers)
    assert verify_webhook_signature(SECRET, headers, body, now=sent + 300) is True
    assert verify_webhook_signature(SECRET, headers, body, now=sent + 301) is False
    assert verify_webhook_signature(SECRET, headers, body, now=sent - 301) is False
    assert (
        verify_webhook_signature(SECRET, headers, body, now=sent + 500, tolerance_seconds=600)
        is True
    )


def test_sign_webhook_signs_as_the_server_does(delivery: Delivery) -> None:
    headers, body = delivery
    plain: Dict[str, Any] = verify_headers(headers)
    signed = sign_webhook(SECRET, body, timestamp_of(headers))
    assert signed["x-batch-memory-signature"] == plain["x-batch-memory-signature"]
