"""Policy refusals in each dialect's own shape: a missing or unknown key (401), a hard budget
(429 with retry-after). The policy here is a small real one: it refuses by the key it is shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import botocore.exceptions
import pytest
from tests.dialects.conftest import Gearshift
from tests.dialects.sdk_calls import QUESTION, bedrock_client

from gearshift.config import RouterConfig
from gearshift.errors import AuthenticationError, BudgetExceeded
from gearshift.policy.contract import Admission, Caller, OpenPolicy


class StrictPolicy(OpenPolicy):
    """Known keys only; the key "gs-broke" has spent its budget."""

    async def authenticate(self, api_key: str | None) -> Caller:
        if api_key not in ("gs-ok", "gs-broke"):
            raise AuthenticationError("a valid gearshift key is required (x-api-key)")
        return Caller(key_id=api_key)

    async def admit(
        self, router: RouterConfig | None, model: str, tags: dict[str, str], caller: Caller
    ) -> Admission:
        if caller.key_id == "gs-broke":
            raise BudgetExceeded(
                "budget team=support (2000 USD/month) is spent; it resets on the 1st",
                retry_after_s=3600,
            )
        return Admission()


@pytest.fixture
def strict(start_gearshift: Callable[..., Gearshift]) -> Gearshift:
    return start_gearshift(StrictPolicy())


def messages(gearshift: Gearshift, key: str) -> Any:
    client = anthropic.Anthropic(base_url=gearshift.url, api_key=key, max_retries=0)
    return client.messages.create(
        model="oa", max_tokens=32, messages=[{"role": "user", "content": QUESTION}]
    )


def converse(gearshift: Gearshift, key: str) -> Any:
    client = bedrock_client(gearshift.url, {"x-api-key": key})
    return client.converse(
        modelId="oa", messages=[{"role": "user", "content": [{"text": QUESTION}]}]
    )


def test_anthropic_refusals(strict: Gearshift) -> None:
    assert messages(strict, "gs-ok").content[0].type == "text"
    with pytest.raises(anthropic.AuthenticationError) as unauthenticated:
        messages(strict, "gs-unknown")
    assert unauthenticated.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.RateLimitError) as refused:
        messages(strict, "gs-broke")
    assert refused.value.response.headers["retry-after"] == "3600"
    assert refused.value.response.headers["x-should-retry"] == "false"
    error = refused.value.body["error"]  # type: ignore[index]
    assert error["type"] == "rate_limit_error" and "team=support" in error["message"]


def test_bedrock_refusals(strict: Gearshift) -> None:
    assert converse(strict, "gs-ok")["stopReason"] == "end_turn"
    with pytest.raises(botocore.exceptions.ClientError) as unauthenticated:
        converse(strict, "gs-unknown")
    assert unauthenticated.value.response["Error"]["Code"] == "AccessDeniedException"
    assert unauthenticated.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        converse(strict, "gs-broke")
    response = refused.value.response
    assert response["Error"]["Code"] == "ThrottlingException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert "resets on the 1st" in response["Error"]["Message"]
    assert response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "3600"
