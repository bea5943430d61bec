"""Per-model ``headers:`` / ``query:`` and base_url query strings: classic Azure OpenAI, Azure's v1
endpoint and Gemini's OpenAI-compatible endpoint, each behind a fake that checks path and auth
the way the service does, called through the gateway with the real openai SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from tests.fakes.azure_gemini import FakeAzureOpenAI, FakeGeminiOpenAI
from tests.gateway.conftest import Running

from gearshift.api.pipeline import Gateway
from gearshift.config import load_settings, parse_settings
from gearshift.errors import ConfigError

ASK = [{"role": "user", "content": "Summarise ticket 4411"}]


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzureOpenAI]:
    monkeypatch.setenv("AZURE_OPENAI_KEY", "azure-fake-key")
    with FakeAzureOpenAI() as server:
        yield server


def one_model(**model: Any) -> dict[str, Any]:
    return {"models": [{"name": "m", "provider": "openai", "tier": 2, **model}]}


def test_classic_azure_deployment_with_api_version_in_base_url(
    azure: FakeAzureOpenAI, start_gateway: Callable[..., Running]
) -> None:
    config = one_model(
        base_url=f"{azure.url}/openai/deployments/prod-gpt4o?api-version=2024-10-21",
        model="gpt-4o",
        headers={"api-key": "${AZURE_OPENAI_KEY}"},
    )
    client = start_gateway(config).client()
    reply = client.chat.completions.create(model="m", messages=ASK)
    assert reply.choices[0].message.content == azure.okn.text
    chunks = list(client.chat.completions.create(model="m", messages=ASK, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert azure.deployments == ["prod-gpt4o", "prod-gpt4o"]
    assert azure.queries == [{"api-version": "2024-10-21"}] * 2
    sent = azure.received[0].headers
    assert sent["api-key"] == "azure-fake-key" and "Authorization" not in sent


def test_classic_azure_with_query_setting_merged_after_base_url_query(
    azure: FakeAzureOpenAI, start_gateway: Callable[..., Running]
) -> None:
    config = one_model(
        base_url=f"{azure.url}/openai/deployments/mini?trace=1",
        headers={"api-key": "${AZURE_OPENAI_KEY}"},
        query={"api-version": "2025-04-01-preview"},
    )
    start_gateway(config).client().chat.completions.create(model="m", messages=ASK)
    assert azure.queries == [{"trace": "1", "api-version": "2025-04-01-preview"}]


def test_azure_without_api_version_is_refused_as_azure_does(
    azure: FakeAzureOpenAI, start_gateway: Callable[..., Running]
) -> None:
    # The fake is strict: without the query string Azure answers 404 (proves the check bites).
    config = one_model(
        base_url=f"{azure.url}/openai/deployments/prod-gpt4o",
        headers={"api-key": "${AZURE_OPENAI_KEY}"},
        max_retries=0,
    )
    with pytest.raises(openai.APIStatusError) as caught:
        start_gateway(config).client().chat.completions.create(model="m", messages=ASK)
    assert "404" in caught.value.message and azure.deployments == []


def test_azure_v1_endpoint_with_api_key_env(
    azure: FakeAzureOpenAI, start_gateway: Callable[..., Running]
) -> None:
    config = one_model(
        base_url=f"{azure.url}/openai/v1", model="gpt-4.1-mini", api_key_env="AZURE_OPENAI_KEY"
    )
    start_gateway(config).client().chat.completions.create(model="m", messages=ASK)
    assert azure.received[0].path == "/openai/v1/chat/completions"
    assert azure.received[0].body["model"] == "gpt-4.1-mini"
    assert azure.received[0].headers["Authorization"] == "Bearer azure-fake-key"


def test_gemini_openai_compatible_endpoint(
    start_gateway: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-fake-key")
    with FakeGeminiOpenAI() as gemini:
        config = one_model(
            base_url=f"{gemini.url}/v1beta/openai/",
            model="gemini-2.5-flash",
            api_key_env="GEMINI_API_KEY",
        )
        reply = start_gateway(config).client().chat.completions.create(model="m", messages=ASK)
    assert reply.choices[0].message.content == gemini.okn.text
    assert gemini.received[0].path == "/v1beta/openai/chat/completions"
    assert gemini.received[0].body["model"] == "gemini-2.5-flash"


def test_upstream_error_never_echoes_a_header_secret(
    azure: FakeAzureOpenAI, start_gateway: Callable[..., Running]
) -> None:
    azure.echo_key_status = 500
    config = one_model(
        base_url=f"{azure.url}/openai/v1",
        model="echo",
        headers={"api-key": "${AZURE_OPENAI_KEY}"},
        max_retries=0,
    )
    with pytest.raises(openai.APIStatusError) as caught:
        start_gateway(config).client().chat.completions.create(model="m", messages=ASK)
    assert "backend failed for subscription key [redacted]" in caught.value.message
    assert "azure-fake-key" not in caught.value.message


def test_unset_variable_in_headers_is_a_startup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_KEY", raising=False)
    settings = parse_settings(one_model(headers={"api-key": "${AZURE_OPENAI_KEY}"}))
    with pytest.raises(ConfigError, match="model 'm' header 'api-key' names environment variable"):
        Gateway(settings).check_environment()


def test_unquoted_yaml_scalars_in_headers_and_query_are_sent_as_written(
    azure: FakeAzureOpenAI, start_gateway: Callable[..., Running], tmp_path: Path
) -> None:
    # YAML reads 2024-10-21 as a date, true as a bool and 3 as an int; the docs' own example
    # left api-version unquoted and `serve` refused it ("Input should be a valid string").
    text = f"""
models:
  - name: m
    provider: openai
    tier: 2
    base_url: {azure.url}/openai/deployments/prod-gpt4o
    headers: {{api-key: "${{AZURE_OPENAI_KEY}}", x-retries: 3, x-debug: true, x-ratio: 0.5}}
    query: {{api-version: 2024-10-21, at: 2024-10-21T10:00:00Z}}
"""
    config = tmp_path / "gearshift.yaml"
    config.write_text(text, encoding="utf-8")
    (model,) = load_settings(config).models  # what `serve --config` reads
    assert model.query == {"api-version": "2024-10-21", "at": "2024-10-21T10:00:00+00:00"}
    assert model.headers == {
        "api-key": "${AZURE_OPENAI_KEY}", "x-retries": "3", "x-debug": "true", "x-ratio": "0.5"
    }  # fmt: skip
    start_gateway(yaml.safe_load(text)).client().chat.completions.create(model="m", messages=ASK)
    assert azure.deployments == ["prod-gpt4o"]
    assert azure.queries == [{"api-version": "2024-10-21", "at": "2024-10-21T10:00:00+00:00"}]
    sent = azure.received[0].headers
    assert (sent["x-retries"], sent["x-debug"], sent["x-ratio"]) == ("3", "true", "0.5")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"api-key": None}, "models.0.headers.api-key: Value error, is empty (YAML null)"),
        (
            {"api-key": ["a"]},
            "models.0.headers.api-key: Value error, must be text, not a YAML list",
        ),
    ],
)
def test_a_header_value_that_is_not_a_scalar_says_why(
    headers: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(one_model(headers=headers))
    assert message in caught.value.message
