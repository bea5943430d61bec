"""One error tree for the whole gateway, mapped to each dialect's error shape at the HTTP edge.

Catch at the depth you need: ``UpstreamError`` for anything a provider did, ``GearshiftError``
for everything. Messages are written for the person who has to fix the problem.
"""

from __future__ import annotations


class GearshiftError(Exception):
    status: int = 500
    code: str = "internal_error"  # machine-readable, OpenAI's ``error.code``

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class ConfigError(GearshiftError):
    code = "config_error"


class NotEnoughLabels(GearshiftError):
    """The learning loop has too few labels to train or evaluate on yet: the normal state of a
    deployment's first days, which the learning commands report in one line, not as a failure."""

    code = "not_enough_labels"


class InvalidRequest(GearshiftError):
    status = 400
    code = "invalid_request_error"


class AuthenticationError(GearshiftError):
    status = 401
    code = "invalid_api_key"


class PermissionDenied(GearshiftError):
    status = 403
    code = "permission_denied"


class NotFound(GearshiftError):
    status = 404
    code = "model_not_found"


class ResourceNotFound(NotFound):
    """Something other than a model is unknown: a request id, a virtual key id."""

    code = "not_found"


class PayloadTooLarge(GearshiftError):
    status = 413
    code = "request_too_large"


class RateLimited(GearshiftError):
    status = 429
    code = "rate_limit_exceeded"

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, param: str | None = None
    ) -> None:
        super().__init__(message, param=param)
        self.retry_after_s = retry_after_s


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"


class UpstreamError(GearshiftError):
    """A provider failed; ``retryable`` ones (429, 5xx, timeouts, resets) trigger retry/fallback."""

    status = 502
    code = "upstream_error"
    # Seconds the upstream asked us to wait (its Retry-After), when it said.
    retry_after_s: float | None = None

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retryable: bool = True,
        model: str | None = None,
    ) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status
        self.retryable = retryable
        self.model = model


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class ServiceUnavailable(GearshiftError):
    status = 503
    code = "service_unavailable"


class LedgerFull(ServiceUnavailable):
    """The ledger's spool reached ``ledger.spool_max_mb``: a request it could not record is
    refused rather than served."""

    code = "ledger_backlog_full"
    retry_after_s: float | None = 5.0
