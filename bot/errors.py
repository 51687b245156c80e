"""The bot's exceptions, one family.

LexiBotError                 anything the bot raises on purpose
├── ConfigError              settings are missing or malformed
│   └── EncryptionKeysError  LEXI_ENCRYPTION_KEYS is missing or malformed (the message never quotes a key)
├── UnreadableSecret         a stored secret cannot be decrypted with any configured key, or was altered
├── StoreBusyError           the database refuses a second process on one SQLite file
└── LexiError                LeadLex answered with an error (or did not answer)
    ├── TransientError       worth retrying: 5xx, timeout, connection, non-JSON body
    │   └── RateLimited      429 rate_limited; carries the wait LeadLex asked for
    ├── InvalidKey           401 invalid_key
    ├── PermissionDenied     403 insufficient_permissions
    ├── InvalidRequest       400 / 409: LeadLex refused the request as made (invalid_url, duplicate_webhook…)
    │   └── NotPending       400 validation_error (on approve/dismiss: the task is no longer pending)
    ├── NotFound             404 not_found
    └── OutOfCredits         402 insufficient_credits
"""

from __future__ import annotations


class LexiBotError(Exception):
    """Raised for every failure the bot anticipates; its message is fit to show a person."""


class ConfigError(LexiBotError):
    """Raised when settings are missing or malformed; the message names every problem at once."""


class EncryptionKeysError(ConfigError):
    """Raised when LEXI_ENCRYPTION_KEYS is empty or holds something other than Fernet keys; names each by position."""


class UnreadableSecret(LexiBotError):
    """Raised when a stored secret cannot be decrypted: its key is no longer configured, or it was altered."""


class StoreBusyError(LexiBotError):
    """Raised when another process already runs the bot on the same SQLite file."""


class LexiError(LexiBotError):
    """Raised when LeadLex answers with an error envelope or an unusable response."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.attempts = attempts


class TransientError(LexiError):
    """Raised when LeadLex fails in a way that may pass: 5xx, timeouts, connection errors, non-JSON bodies."""


class RateLimited(TransientError):
    """Raised on 429 rate_limited; `retry_after` is the wait in seconds LeadLex implied, when known."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class InvalidKey(LexiError):
    """Raised on 401 invalid_key: the API key is unknown, revoked or expired."""


class PermissionDenied(LexiError):
    """Raised on 403 insufficient_permissions: the key lacks the Lexi permission."""


class InvalidRequest(LexiError):
    """Raised on 400 or 409: LeadLex refused the request itself (its code says why)."""


class NotPending(InvalidRequest):
    """Raised on 400 validation_error: for approve/dismiss, the task is no longer pending."""


class NotFound(LexiError):
    """Raised on 404 not_found: the task (or resource) does not exist."""


class OutOfCredits(LexiError):
    """Raised on 402 insufficient_credits: the workspace has no credits left for Lexi chat."""
