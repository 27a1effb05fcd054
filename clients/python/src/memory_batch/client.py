"""HTTP client of the REST route ``/api/v1/memory/batch`` (see client/index.ts,
which this mirrors: same headers, routes, field names and error shapes)."""

from __future__ import annotations

import json
import os
import time
import zlib
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Union,
)
from urllib.parse import quote, urlencode

import httpx

from .errors import (
    ERRORS_BY_STATUS,
    BatchMemoryError,
    BatchWaitTimeoutError,
    RateLimitedError,
    UnreachableError,
)

DEFAULT_APP_ID = "batch-memory"
DEFAULT_SERVER_URL = "http://localhost:1337"
REST_PATH = "/api/v1/memory/batch"
TERMINAL_STATUSES = ("completed", "failed", "cancelled", "deleted")
RESULT_STATUSES = ("succeeded", "failed")

#: Bytes read from a file at a time when streaming it.
READ_CHUNK_BYTES = 64 * 1024
# Compressed output is sent once this much has gathered, so that a request
# is a few dozen chunks per megabyte rather than one per line.
SEND_CHUNK_BYTES = 64 * 1024

Memory = Dict[str, Any]
NdjsonSource = Union[
    "os.PathLike[str]",
    IO[bytes],
    IO[str],
    Iterable[Union[Memory, str, bytes]],
]


class BatchSubmission(dict):  # type: ignore[type-arg]
    """The route's answer to a submission (``batch_id``, ``status``,
    ``total``, ``processed``, ``failed``, ``results``...), a plain dict.

    ``http_status`` tells how the server answered: 200 completed with every
    memory stored, 207 finished with problems, 202 still running.
    ``replayed`` is true when the idempotency key matched an earlier batch,
    which is the one answered with.
    """

    def __init__(self, answer: Mapping[str, Any], http_status: int, replayed: bool) -> None:
        super().__init__(answer)
        self.http_status = http_status
        self.replayed = replayed


def is_finished(status: Mapping[str, Any]) -> bool:
    """True once a batch has reached completed, failed or cancelled."""
    return status.get("status") in TERMINAL_STATUSES


def _retry_after(response: httpx.Response) -> Optional[int]:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0, int(value.strip()))
    except ValueError:
        return None


def _error_of(response: httpx.Response) -> BatchMemoryError:
    """The error answer as the class of its status, keeping the server's
    code, message and details."""
    text = response.text
    status = response.status_code
    cls = ERRORS_BY_STATUS.get(status, BatchMemoryError)
    extra: Dict[str, Any] = {}
    if cls is RateLimitedError:
        extra["retry_after"] = _retry_after(response)
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
    ):
        details = error.get("details")
        return cls(
            status,
            error["code"],
            error["message"],
            details if isinstance(details, list) else [],
            error.get("batch_id"),
            **extra,
        )
    message = f"HTTP {status} {response.reason_phrase}"
    if text:
        message += f": {text[:200]}"
    return cls(status, "http_error", message, **extra)


def _json_of(text: str, what: str, status: int) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise BatchMemoryError(
            status, "invalid_response", f"{what} is not valid JSON: {error}"
        ) from None


def _ndjson_bytes(source: NdjsonSource) -> Iterator[bytes]:
    """The source as NDJSON bytes, read a piece at a time."""
    if isinstance(source, os.PathLike):
        with open(source, "rb") as file:
            yield from _ndjson_bytes(file)
        return
    read = getattr(source, "read", None)
    if callable(read):
        while True:
            chunk = read(READ_CHUNK_BYTES)
            if not chunk:
                return
            yield chunk.encode("utf-8") if isinstance(chunk, str) else chunk
    for item in source:
        if isinstance(item, bytes):
            line = item
        elif isinstance(item, str):
            line = item.encode("utf-8")
        else:
            line = json.dumps(item, ensure_ascii=False).encode("utf-8")
        yield line if line.endswith(b"\n") else line + b"\n"


def _gzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(wbits=31)  # 31: a gzip wrapper
    pending = bytearray()
    for chunk in chunks:
        pending += compressor.compress(chunk)
        if len(pending) >= SEND_CHUNK_BYTES:
            yield bytes(pending)
            pending.clear()
    pending += compressor.flush()
    yield bytes(pending)


class BatchMemoryClient:
    """Submits batches, follows them and reads their results.

    Authenticate with a user's ``session_token`` (sent as
    ``X-Parse-Session-Token``, or ``Authorization: Bearer`` with
    ``bearer=True``), or with the ``master_key``, which acts for ``user_id``
    when submitting and listing and may read and cancel any batch.
    ``server_url`` is the server's root (``http://localhost:1337``); a Parse
    server URL ending in ``/parse`` is accepted too.
    """

    def __init__(
        self,
        server_url: str = DEFAULT_SERVER_URL,
        *,
        session_token: Optional[str] = None,
        master_key: Optional[str] = None,
        user_id: Optional[str] = None,
        bearer: bool = False,
        app_id: str = DEFAULT_APP_ID,
        timeout: Optional[float] = 300.0,
        http_client: Optional[httpx.Client] = None,
    ) -> None:
        if (session_token is None) == (master_key is None):
            raise ValueError("give either session_token or master_key")
        if user_id is not None and master_key is None:
            raise ValueError("user_id acts for a user with the master key only")
        origin = server_url.rstrip("/")
        if origin.endswith("/parse"):
            origin = origin[: -len("/parse")]
        self.batch_url = origin + REST_PATH
        headers = {"X-Parse-Application-Id": app_id}
        if master_key is not None:
            headers["X-Parse-Master-Key"] = master_key
        elif bearer:
            headers["Authorization"] = f"Bearer {session_token}"
        else:
            headers["X-Parse-Session-Token"] = str(session_token)
        self._headers = headers
        self._acting_user_id = user_id if master_key is not None else None
        # A submission may wait for its batch (the server's
        # BATCH_WAIT_TIMEOUT): reads get as long, connecting does not.
        self._timeout = httpx.Timeout(timeout, connect=10.0)
        self._http = http_client or httpx.Client(timeout=self._timeout)
        self._owns_http = http_client is None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> "BatchMemoryClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def results_url(self, batch_id: str) -> str:
        """Where a finished batch's per-item results are downloaded."""
        return f"{self._url(batch_id)}/results"

    # Submitting

    def add(
        self,
        memories: Iterable[Memory],
        *,
        namespace: Optional[str] = None,
        workspace_id: Optional[str] = None,
        webhook_url: Optional[str] = None,
        webhook_secret: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        idempotency_key: Optional[str] = None,
        wait: Optional[bool] = None,
    ) -> BatchSubmission:
        """Submits a batch as one JSON body (up to the server's
        MAX_BATCH_SIZE memories); larger ones go through add_ndjson.

        ``wait=False`` answers (202) once the batch is stored; otherwise the
        server waits up to its BATCH_WAIT_TIMEOUT for the batch to finish.
        """
        body: Dict[str, Any] = {"memories": list(memories)}
        body.update(
            _present(
                namespace=namespace,
                workspace_id=workspace_id,
                webhook_url=webhook_url,
                webhook_secret=webhook_secret,
                metadata=metadata,
                user_id=self._acting_user_id,
            )
        )
        response = self._request(
            "POST",
            "",
            params=_present(wait=_flag(wait)),
            headers={
                "Content-Type": "application/json",
                **_idempotency(idempotency_key),
            },
            content=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        )
        return self._submission(response)

    def add_ndjson(
        self,
        source: NdjsonSource,
        *,
        namespace: Optional[str] = None,
        workspace_id: Optional[str] = None,
        webhook_url: Optional[str] = None,
        webhook_secret: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        process: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        wait: Optional[bool] = None,
    ) -> BatchSubmission:
        """Streams a batch as gzip NDJSON, one memory per line.

        ``source`` is a path, a file opened in binary or text mode (sent as
        it is, a piece at a time), or an iterable of memories (dicts) or
        lines: nothing is held in memory whole, so its size is bounded by
        the server's MAX_STREAM_BATCH_SIZE only. ``process`` is
        ``after_upload`` (the server's default: all or nothing, once the
        whole body has arrived valid) or ``while_uploading``.
        """
        params = _present(
            namespace=namespace,
            workspace_id=workspace_id,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            # The route reads the batch's metadata from the query string as JSON text.
            metadata=None if metadata is None else json.dumps(metadata, ensure_ascii=False),
            process=process,
            user_id=self._acting_user_id,
            wait=_flag(wait),
        )
        response = self._request(
            "POST",
            "",
            params=params,
            headers={
                "Content-Type": "application/x-ndjson",
                "Content-Encoding": "gzip",
                **_idempotency(idempotency_key),
            },
            # An iterator is sent with chunked transfer encoding, as read.
            content=_gzipped(_ndjson_bytes(source)),
        )
        return self._submission(response)

    # Reading

    def get(self, batch_id: str) -> Dict[str, Any]:
        """Status, counts and timestamps of a batch."""
        response = self._request("GET", self._path(batch_id))
        return self._json(response)

    def list(
        self,
        *,
        status: Optional[str] = None,
        namespace: Optional[str] = None,
        created_after: Optional[str] = None,
        created_before: Optional[str] = None,
        limit: Optional[int] = None,
        after: Optional[str] = None,
        offset: Optional[int] = None,
    ) -> Dict[str, Any]:
        """A page of the user's own batches (the master key's acting user),
        newest first, filtered: ``{"batches": [...], "next_cursor"?: c}``;
        pass ``next_cursor`` as ``after`` for the next page (stable while
        batches are created). Times are ISO 8601 strings."""
        params = _present(
            status=status,
            namespace=namespace,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            after=after,
            offset=offset,
            user_id=self._acting_user_id,
        )
        return self._json(self._request("GET", "", params=params))

    def results(
        self,
        batch_id: str,
        status: Optional[str] = None,
        *,
        after: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> Iterator[Dict[str, Any]]:
        """Per-item results of a finished batch, in batch order, read as
        they stream in.

        ``status`` keeps ``"succeeded"`` or ``"failed"`` items only,
        ``after`` those whose index is greater, ``limit`` at most that
        many: the server filters, so only those cross the network. The
        request is sent when iteration starts.
        """
        if status is not None and status not in RESULT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(RESULT_STATUSES)}")
        query = urlencode(_present(status=status, after=after, limit=limit))
        return self._results(f"{self._path(batch_id)}/results{'?' + query if query else ''}")

    def _results(self, path: str) -> Iterator[Dict[str, Any]]:
        with self._stream("GET", path) as response:
            for number, line in enumerate(response.iter_lines(), start=1):
                if not line.strip():
                    continue
                yield _json_of(line, f"results line {number}", response.status_code)

    def events(
        self, batch_id: str, *, deadline: Optional[float] = None
    ) -> Iterator[Dict[str, Any]]:
        """The batch's status at each change, from the server-sent events
        stream, until the batch finishes or the server ends the stream."""
        timeout = self._timeout
        if deadline is not None:
            timeout = httpx.Timeout(max(0.001, deadline - time.monotonic()), connect=10.0)
        with self._stream(
            "GET",
            f"{self._path(batch_id)}/events",
            headers={"Accept": "text/event-stream"},
            timeout=timeout,
        ) as response:
            event = "message"
            data: List[str] = []
            for line in response.iter_lines():
                if deadline is not None and time.monotonic() > deadline:
                    return
                if line == "":
                    if event == "progress" and data:
                        yield _json_of("\n".join(data), "progress event", response.status_code)
                    event = "message"
                    data = []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    value = line[5:]
                    data.append(value[1:] if value.startswith(" ") else value)

    def wait(
        self,
        batch_id: str,
        *,
        on_progress: Optional[Callable[[Dict[str, Any]], None]] = None,
        timeout: Optional[float] = None,
        via: str = "events",
        poll_interval: float = 1.0,
    ) -> Dict[str, Any]:
        """Returns the batch's terminal status (completed, failed or
        cancelled), calling ``on_progress`` with every status seen.

        ``via="events"`` follows the server-sent events stream (followed
        again when it ends early: a restarted server, a proxy's timeout);
        ``via="poll"`` asks for the status every ``poll_interval`` seconds.
        Past ``timeout`` seconds it raises BatchWaitTimeoutError; the batch
        keeps running.
        """
        if via not in ("events", "poll"):
            raise ValueError('via must be "events" or "poll"')
        deadline = None if timeout is None else time.monotonic() + timeout
        last: Optional[Dict[str, Any]] = None

        def out_of_time() -> bool:
            return deadline is not None and time.monotonic() >= deadline

        while True:
            try:
                if via == "poll":
                    updates: Iterable[Dict[str, Any]] = [self.get(batch_id)]
                else:
                    updates = self.events(batch_id, deadline=deadline)
                for status in updates:
                    last = status
                    if on_progress is not None:
                        on_progress(status)
                    if is_finished(status):
                        return status
            except UnreachableError:
                # A read that ran into the deadline is the wait's timeout.
                if not out_of_time():
                    raise
            if out_of_time():
                raise BatchWaitTimeoutError(batch_id, float(timeout or 0), last)
            pause = poll_interval
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)

    # Acting on a batch

    def cancel(self, batch_id: str) -> Dict[str, Any]:
        """Stops a batch; memories written so far stay. Returns once the
        batch has stopped."""
        return self._json(self._request("POST", f"{self._path(batch_id)}/cancel"))

    def delete(self, batch_id: str) -> Dict[str, Any]:
        """Undoes an import: the server removes every memory the batch created
        and its stored files, stopping a running batch first.

        Returns the batch's status as the deletion begins (``deleting``, or
        ``deleted`` when asked again); ``wait`` follows it to ``deleted``,
        where ``deleted_memories`` says how many memories were removed.
        """
        return self._json(self._request("DELETE", self._path(batch_id)))

    def retry(self, batch_id: str, *, idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """Starts a new batch of the items a finished batch did not store.

        A batch has one retry: asking again answers the same new batch.
        """
        response = self._request(
            "POST",
            f"{self._path(batch_id)}/retry",
            headers=_idempotency(idempotency_key),
        )
        return self._json(response)

    # Plumbing

    def _path(self, batch_id: str) -> str:
        return "/" + quote(batch_id, safe="")

    def _url(self, batch_id: str) -> str:
        return self.batch_url + self._path(batch_id)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        headers: Optional[Mapping[str, str]] = None,
        content: Any = None,
    ) -> httpx.Response:
        url = self.batch_url + path
        try:
            response = self._http.request(
                method,
                url,
                params=params or None,
                headers={**self._headers, **(headers or {})},
                content=content,
                timeout=self._timeout,
            )
        except httpx.TransportError as error:
            raise UnreachableError(0, "unreachable", f"cannot reach {url}: {error}") from error
        if response.is_error:
            raise _error_of(response)
        return response

    def _stream(
        self,
        method: str,
        path: str,
        *,
        headers: Optional[Mapping[str, str]] = None,
        timeout: Optional[httpx.Timeout] = None,
    ) -> "_Stream":
        return _Stream(self, method, self.batch_url + path, headers, timeout)

    def _submission(self, response: httpx.Response) -> BatchSubmission:
        return BatchSubmission(
            self._json(response),
            response.status_code,
            response.headers.get("Idempotent-Replayed") == "true",
        )

    def _json(self, response: httpx.Response) -> Dict[str, Any]:
        answer = _json_of(response.text, "the answer", response.status_code)
        if not isinstance(answer, dict):
            raise BatchMemoryError(
                response.status_code,
                "invalid_response",
                "the answer is not a JSON object",
            )
        return answer


class _Stream:
    """A streamed response whose error answers and broken connections
    become BatchMemoryErrors, closed however iteration ends."""

    def __init__(
        self,
        client: BatchMemoryClient,
        method: str,
        url: str,
        headers: Optional[Mapping[str, str]],
        timeout: Optional[httpx.Timeout],
    ) -> None:
        self._client = client
        self._method = method
        self._url = url
        self._headers = {**client._headers, **(headers or {})}
        self._timeout = timeout or client._timeout
        self._context: Any = None

    def __enter__(self) -> "_StreamedResponse":
        self._context = self._client._http.stream(
            self._method, self._url, headers=self._headers, timeout=self._timeout
        )
        try:
            response = self._context.__enter__()
        except httpx.TransportError as error:
            raise UnreachableError(
                0, "unreachable", f"cannot reach {self._url}: {error}"
            ) from error
        if response.is_error:
            try:
                response.read()
                raise _error_of(response)
            finally:
                self._context.__exit__(None, None, None)
        return _StreamedResponse(response, self._url)

    def __exit__(self, *exc: Any) -> None:
        self._context.__exit__(*exc)


class _StreamedResponse:
    def __init__(self, response: httpx.Response, url: str) -> None:
        self._response = response
        self._url = url
        self.status_code = response.status_code

    def iter_lines(self) -> Iterator[str]:
        try:
            yield from self._response.iter_lines()
        except httpx.TransportError as error:
            raise UnreachableError(
                0, "unreachable", f"the answer from {self._url} broke off: {error}"
            ) from error


def _present(**fields: Any) -> Dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _flag(value: Optional[bool]) -> Optional[str]:
    return None if value is None else ("true" if value else "false")


def _idempotency(key: Optional[str]) -> Dict[str, str]:
    return {"Idempotency-Key": key} if key else {}
