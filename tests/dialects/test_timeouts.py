"""An upstream that does not answer within the model's read timeout, seen by each dialect's
real client: Anthropic's 504 ``timeout_error``, Bedrock's 408 ``ModelTimeoutException``."""

from __future__ import annotations

from typing import Any

import anthropic
import botocore.exceptions
import pytest
from tests.dialects.sdk_calls import ask


@pytest.mark.parametrize("dialect", ["anthropic", "bedrock"])
def test_upstream_timeout_status_through_the_app(
    gearshift: Any, upstreams: dict[str, Any], dialect: str
) -> None:
    upstreams["an"].knobs.hang_s = 2.0
    upstreams["an"].fail_next("timeout")
    if dialect == "anthropic":
        with pytest.raises(anthropic.APIStatusError) as error:
            ask("anthropic", gearshift.url, "an-impatient")
        assert error.value.status_code == 504
        assert error.value.body["error"]["type"] == "timeout_error"  # type: ignore[index]
    else:
        with pytest.raises(botocore.exceptions.ClientError) as boto_error:
            ask("bedrock", gearshift.url, "an-impatient")
        assert boto_error.value.response["Error"]["Code"] == "ModelTimeoutException"
        assert boto_error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 408
    (record,) = gearshift.wait_records(1)
    assert record.outcome == "error" and record.status == 504
