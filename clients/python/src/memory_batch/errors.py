"""Errors of the batch route, one class per case a caller acts on differently."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Type


class BatchMemoryError(Exception):
    """An error answer of the REST route, in the server's shape.

    ``status`` is the HTTP status (0 when no answer arrived), ``code`` the
    server's stable code (``invalid_request``, ``unauthorized``...), and
    ``details`` its list of ``{path, index?, field?, message, limit?}``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Optional[List[Dict[str, Any]]] = None,
        batch_id: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: List[Dict[str, Any]] = list(details or [])
        # A batch the refused upload created all the same
        # (process="while_uploading"): it holds the memories before the
        # refused line.
        self.batch_id = batch_id

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, "
            f"code={self.code!r}, message={self.message!r})"
        )


class UnreachableError(BatchMemoryError):
    """No answer arrived: the server could not be reached or the
    connection broke."""


class InvalidRequestError(BatchMemoryError):
    """400: the request was refused; ``details`` name the item and field."""


class AuthenticationError(BatchMemoryError):
    """401: no valid session token or master key."""


class PermissionDeniedError(BatchMemoryError):
    """403: an anonymous user submitting, or a member of the batch's
    organization acting on a batch that is not theirs."""


class NotFoundError(BatchMemoryError):
    """404: no such batch, or not the caller's."""


class ConflictError(BatchMemoryError):
    """409: an idempotency key reused with another body, or results not
    ready yet."""


class RateLimitedError(BatchMemoryError):
    """429: try again after ``retry_after`` seconds (the Retry-After
    header, when the server sent one)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Optional[List[Dict[str, Any]]] = None,
        batch_id: Optional[str] = None,
        retry_after: Optional[int] = None,
    ) -> None:
        super().__init__(status, code, message, details, batch_id)
        self.retry_after = retry_after


class BatchWaitTimeoutError(BatchMemoryError, TimeoutError):
    """The wait ran out before the batch finished; the batch itself keeps
    running."""

    def __init__(
        self,
        batch_id: str,
        timeout: float,
        last_status: Optional[Dict[str, Any]],
    ) -> None:
        last = last_status["status"] if last_status else "unknown"
        super().__init__(
            0,
            "wait_timeout",
            f"batch {batch_id} did not finish within {timeout} s (last status {last})",
            batch_id=batch_id,
        )
        self.timeout = timeout
        self.last_status = last_status


ERRORS_BY_STATUS: Dict[int, Type[BatchMemoryError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
}
