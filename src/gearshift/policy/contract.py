"""What the gateway pipeline asks of policy (virtual keys, budgets, targets).

The pipeline calls ``authenticate`` with the caller's bearer/x-api-key value, then ``admit`` before
routing (which may refuse with ``BudgetExceeded``/``RateLimited``, or narrow the candidates and
adjust the tolerance), and ``settle`` exactly once per admitted request with its final ledger
record (success or failure), so reservations are released and controllers learn.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from gearshift.config import RouterConfig
from gearshift.ledger.record import LedgerRecord


@dataclass(slots=True, frozen=True)
class Caller:
    key_id: str | None = None  # None = anonymous
    tags: dict[str, str] = field(default_factory=dict)  # the key's default attribution tags
    models: tuple[str, ...] | None = None  # the key's allow-list of routers / models
    rpm: int | None = None  # the key's own rate limits (``/admin/keys``)
    tpm: int | None = None


@dataclass(slots=True)
class Admission:
    tolerance: float | None = None  # effective tolerance, None = the router's own
    allowed: Collection[str] | None = None  # None = every candidate
    notes: list[str] = field(default_factory=list)  # why (e.g. "soft budget team=support reached")
    token: Any = None  # opaque reservation handle for settle()
    rate: Any = None  # opaque rate-limit ticket for settle() (tokens counted per minute)


class PolicyEngine(Protocol):
    async def authenticate(self, api_key: str | None) -> Caller: ...

    async def admit(
        self, router: RouterConfig | None, model: str, tags: dict[str, str], caller: Caller
    ) -> Admission: ...

    async def settle(self, admission: Admission, record: LedgerRecord) -> None: ...

    async def aclose(self) -> None: ...


class OpenPolicy:
    """No keys, no budgets, no targets: everyone is served as configured."""

    async def authenticate(self, api_key: str | None) -> Caller:
        return Caller()

    async def admit(
        self, router: RouterConfig | None, model: str, tags: dict[str, str], caller: Caller
    ) -> Admission:
        return Admission()

    async def settle(self, admission: Admission, record: LedgerRecord) -> None:
        return None

    async def aclose(self) -> None:
        return None
