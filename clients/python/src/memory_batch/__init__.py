"""Client of the batch memory ingestion REST route of parse-temporal-batch-memory."""

from .client import (
    DEFAULT_APP_ID,
    DEFAULT_SERVER_URL,
    BatchMemoryClient,
    BatchSubmission,
    is_finished,
)
from .errors import (
    AuthenticationError,
    BatchMemoryError,
    BatchWaitTimeoutError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnreachableError,
)
from .webhook import (
    WEBHOOK_HEADERS,
    WEBHOOK_TOLERANCE_SECONDS,
    sign_webhook,
    verify_webhook_signature,
)

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_SERVER_URL",
    "WEBHOOK_HEADERS",
    "WEBHOOK_TOLERANCE_SECONDS",
    "AuthenticationError",
    "BatchMemoryClient",
    "BatchMemoryError",
    "BatchSubmission",
    "BatchWaitTimeoutError",
    "ConflictError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "UnreachableError",
    "is_finished",
    "sign_webhook",
    "verify_webhook_signature",
]
