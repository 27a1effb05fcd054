"""The stack under test, from the environment test/client/python-client.test.ts
sets: MEMORY_BATCH_SERVER (the server's root), PARSE_APP_ID,
PARSE_MASTER_KEY and MEMORY_BATCH_WEBHOOK_HOST (the one address the stack
lets webhooks reach)."""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import httpx
import pytest

from memory_batch import BatchMemoryClient


@dataclass(frozen=True)
class Stack:
    server: str
    app_id: str
    master_key: str
    webhook_host: str


@dataclass(frozen=True)
class User:
    id: str
    session_token: str


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: these tests run against a real stack, "
            "through jest (test/client/python-client.test.ts)"
        )
    return value


@pytest.fixture(scope="session")
def stack() -> Stack:
    return Stack(
        server=_required("MEMORY_BATCH_SERVER"),
        app_id=_required("PARSE_APP_ID"),
        master_key=_required("PARSE_MASTER_KEY"),
        webhook_host=os.environ.get("MEMORY_BATCH_WEBHOOK_HOST", "127.0.0.3"),
    )


@pytest.fixture
def new_user(stack: Stack) -> Callable[[], User]:
    """Signs a new user up through Parse Server's REST API."""

    def sign_up() -> User:
        answer = httpx.post(
            f"{stack.server}/parse/users",
            headers={"X-Parse-Application-Id": stack.app_id},
            json={"username": f"py-{uuid.uuid4()}", "password": "test-password-123"},
            timeout=30,
        )
        answer.raise_for_status()
        body = answer.json()
        return User(id=body["objectId"], session_token=body["sessionToken"])

    return sign_up


@pytest.fixture
def user(new_user: Callable[[], User]) -> User:
    return new_user()


@pytest.fixture
def client(stack: Stack, user: User) -> Iterator[BatchMemoryClient]:
    with BatchMemoryClient(
        stack.server, session_token=user.session_token, app_id=stack.app_id
    ) as c:
        yield c


def memories(
    count: int, extra: Optional[Callable[[int], Dict[str, Any]]] = None
) -> List[Dict[str, Any]]:
    """Plausible memories; ``extra(index)`` adds metadata the test
    processor acts on (test_reject, test_hold)."""
    return [
        {
            "content": f"Memory {index}: the team prefers morning meetings "
            f"and written summaries after each call about topic {index}.",
            "metadata": {"index": index, "kind": "note", **(extra(index) if extra else {})},
        }
        for index in range(count)
    ]


def held(count: int) -> List[Dict[str, Any]]:
    """A batch that keeps running until it is cancelled: the first 30
    memories of each part of 100 are written at once, the others wait
    for a gate that is never opened (the test processor's test_hold)."""
    gate = str(uuid.uuid4())
    return memories(count, lambda i: {} if i % 100 < 30 else {"test_hold": gate})


Request = Tuple[str, Dict[str, str], bytes]


class LocalServer:
    """A one-purpose HTTP server on this machine: it records each request
    and answers with a canned status, headers and body."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        status: int = 200,
        headers: Optional[Dict[str, str]] = None,
        body: bytes = b"",
    ) -> None:
        self.requests: List[Request] = []
        self.received = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def _answer(self) -> None:
                received = self._body() if self.command == "POST" else b""
                server.requests.append(
                    (f"{self.command} {self.path}", dict(self.headers.items()), received)
                )
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                server.received.set()

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *_: Any) -> None:
                pass

        self._http = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def local_server() -> Iterator[Callable[..., LocalServer]]:
    started: List[LocalServer] = []

    def start(**options: Any) -> LocalServer:
        server = LocalServer(**options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()
