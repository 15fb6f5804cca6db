"""One error hierarchy, so every shell (CLI, HTTP) can turn a failure into one clear line.

Each error carries a short, stable ``code`` for machines and a message for people.  The
message must name what is wrong and, where possible, what to do about it.
"""

from __future__ import annotations


class TsubaError(Exception):
    """Base of every error tsuba raises on purpose."""

    code = "error"
    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(TsubaError):
    code = "usage"


class ConfigError(TsubaError):
    code = "config"


class HomeError(TsubaError):
    """The data directory is missing, incomplete or would be overwritten."""

    code = "home"


class StorageError(TsubaError):
    code = "storage"


class NotFoundError(TsubaError):
    code = "not_found"


class ConflictError(TsubaError):
    code = "conflict"


class InputError(TsubaError):
    """Bad input from a user or a file: malformed, truncated, out of range."""

    code = "input"


class KeyStoreError(TsubaError):
    """The key store failed or refused: callers must fail closed."""

    code = "keystore"


class DecryptionError(KeyStoreError):
    """A ciphertext did not authenticate: wrong key, wrong associated data, or tampering."""

    code = "decryption"


class IntegrityError(TsubaError):
    """Stored data no longer matches what was recorded or signed."""

    code = "integrity"
    exit_code = 1


class AuthenticationError(TsubaError):
    """Credentials missing, malformed, forged, expired, revoked or replayed (HTTP 401)."""

    code = "unauthenticated"


class AuthorizationError(TsubaError):
    code = "forbidden"


class RateLimitedError(TsubaError):
    """A limit or budget refused the request (HTTP 429); ``headers`` go to the client."""

    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: float, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = dict(headers or {})


class UpstreamError(TsubaError):
    """The model server failed, timed out or answered nonsense (HTTP 502/504)."""

    code = "upstream_error"

    def __init__(self, message: str, *, status: int = 502) -> None:
        super().__init__(message)
        self.status = status
