"""Error answers become typed errors carrying the server's status, code and
details."""

from __future__ import annotations

import socket
from typing import Any, Callable

import pytest
from conftest import Stack, User, error_body, memories

from memory_batch import (
    AuthenticationError,
    BatchMemoryClient,
    BatchMemoryError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    UnreachableError,
)


def test_a_wrong_session_token_raises_authentication_error(stack: Stack) -> None:
    client = BatchMemoryClient(stack.server, session_token="r:not-a-session", app_id=stack.app_id)
    with pytest.raises(AuthenticationError) as raised:
        client.list()
    assert (raised.value.status, raised.value.code) == (401, "unauthorized")
    assert "session token" in raised.value.message


def test_another_users_batch_is_not_found(
    stack: Stack, client: BatchMemoryClient, new_user: Callable[[], User]
) -> None:
    batch_id = client.add(memories(1))["batch_id"]
    other = BatchMemoryClient(
        stack.server, session_token=new_user().session_token, app_id=stack.app_id
    )
    for act in (other.get, other.cancel, lambda b: list(other.results(b))):
        with pytest.raises(NotFoundError) as raised:
            act(batch_id)
        assert (raised.value.status, raised.value.code) == (404, "not_found")


def test_an_invalid_request_carries_code_and_details(client: BatchMemoryClient) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        client.add([{"content": "fine"}, {"content": "   "}])
    error = raised.value
    assert (error.status, error.code) == (400, "invalid_request")
    assert isinstance(error, BatchMemoryError)
    assert {
        "path": "memories[1].content",
        "index": 1,
        "field": "content",
        "message": "must not be empty",
    } in error.details


def test_rate_limited_carries_retry_after(local_server: Any) -> None:
    server = local_server(
        status=429,
        headers={"Retry-After": "7", "Content-Type": "application/json"},
        body=error_body("rate_limited", "USER_RATE_LIMIT reached"),
    )
    client = BatchMemoryClient(server.url, session_token="r:x")
    with pytest.raises(RateLimitedError) as raised:
        client.get("abc")
    assert (raised.value.status, raised.value.code, raised.value.retry_after) == (
        429,
        "rate_limited",
        7,
    )
    assert raised.value.message == "USER_RATE_LIMIT reached"


def test_an_answer_not_in_the_error_shape_keeps_its_status(local_server: Any) -> None:
    server = local_server(status=502, body=b"<html>bad gateway</html>")
    client = BatchMemoryClient(server.url, session_token="r:x")
    with pytest.raises(BatchMemoryError) as raised:
        client.get("abc")
    assert (raised.value.status, raised.value.code) == (502, "http_error")
    assert "bad gateway" in raised.value.message


def test_an_unreachable_server_raises_unreachable_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = BatchMemoryClient(f"http://127.0.0.1:{port}", session_token="r:x")
    with pytest.raises(UnreachableError) as raised:
        client.get("abc")
    assert (raised.value.status, raised.value.code) == (0, "unreachable")


def test_the_client_takes_exactly_one_credential() -> None:
    with pytest.raises(ValueError):
        BatchMemoryClient("http://localhost:1337")
    with pytest.raises(ValueError):
        BatchMemoryClient("http://localhost:1337", session_token="r:x", master_key="mk")
    with pytest.raises(ValueError):
        BatchMemoryClient("http://localhost:1337", session_token="r:x", user_id="u1")


def test_a_parse_server_url_is_taken_for_its_root() -> None:
    client = BatchMemoryClient("http://localhost:1337/parse/", session_token="r:x")
    assert client.batch_url == "http://localhost:1337/api/v1/memory/batch"
    assert client.results_url("a1") == "http://localhost:1337/api/v1/memory/batch/a1/results"
