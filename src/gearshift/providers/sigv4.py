"""SigV4 signing for Bedrock calls with botocore's own signer.

Credentials come from the standard AWS chain (environment, shared config/credentials files and
profiles, SSO, container and instance roles) through a botocore session, resolved once — the
chain may touch the instance-metadata endpoint, which must not happen per request — and then
reused. Temporary credentials are ``RefreshableCredentials``: botocore refreshes them shortly
before they expire, and we do that refresh off the event loop because it is network I/O.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from gearshift.errors import UpstreamError

SERVICE = "bedrock"
log = logging.getLogger("gearshift.providers.bedrock")


class AwsSigner:
    """Resolves the credential chain once (lazily, on first use) and signs requests with it."""

    def __init__(self) -> None:
        self._credentials: Any = None  # botocore Credentials / RefreshableCredentials
        self._default_region: str | None = None
        self._resolved = False
        self._lock: asyncio.Lock | None = None

    async def _resolve(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._resolved:
                return
            # botocore is imported here, not at module import: it costs tens of milliseconds.
            self._credentials, self._default_region = await asyncio.to_thread(_resolve_chain)
            self._resolved = True

    async def warm(self) -> None:
        """Resolve the chain and load the signer ahead of the first request (never raises:
        a failure here is reported, with how to fix it, by the first request instead)."""
        try:
            await self._resolve()
            await asyncio.to_thread(_import_signer)
        except Exception:
            log.warning("resolving AWS credentials at startup failed", exc_info=True)
            return
        if self._credentials is None:
            log.warning(
                "no AWS credentials found for bedrock models: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY or AWS_PROFILE, run with a role, or give the models "
                "`api_key_env` (a Bedrock API key); their requests will fail until then"
            )

    async def region_for(self, configured: str | None) -> str:
        if configured:
            return configured
        for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            value = os.environ.get(var)
            if value:
                return value
        await self._resolve()
        if self._default_region:
            return self._default_region
        raise UpstreamError(
            "no AWS region for a bedrock model: set `region` on the model in the configuration, "
            "or AWS_REGION / AWS_DEFAULT_REGION in the environment",
            retryable=False,
        )

    async def frozen_credentials(self) -> Any:
        if not self._resolved:
            await self._resolve()
        creds = self._credentials
        if creds is None:
            raise UpstreamError(
                "no AWS credentials found for a bedrock model: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role is available "
                "(or give the model `api_key_env` naming a Bedrock API key)",
                retryable=False,
            )
        refresh_needed = getattr(creds, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            return await asyncio.to_thread(creds.get_frozen_credentials)
        return creds.get_frozen_credentials()

    async def sign(
        self, url: str, body: bytes, region: str, headers: dict[str, str]
    ) -> dict[str, str]:
        """Headers for ``POST url`` with ``body``: the given ones plus X-Amz-Date, the session
        token when there is one, and Authorization. ``url`` must be exactly what is sent."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = await self.frozen_credentials()
        request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
        SigV4Auth(credentials, SERVICE, region).add_auth(request)
        return {k: str(v) for k, v in request.headers.items()}


def _import_signer() -> None:
    import botocore.auth
    import botocore.awsrequest

    del botocore


def _resolve_chain() -> tuple[Any, str | None]:
    import botocore.session

    session = botocore.session.Session()
    return session.get_credentials(), session.get_config_variable("region")
