"""``gearshift serve`` with no config: default routers from each provider's standard environment
variables, run as a real subprocess against the fake providers on loopback."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from tests.conftest import free_port
from tests.dialects.sdk_calls import bedrock_client
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.bedrock_server import FakeBedrock
from tests.fakes.openai_server import FakeOpenAIServer
from tests.serve_process import start_serve, stop, wait_healthy

from gearshift.catalogue import current_models, lookup
from gearshift.quickstart import bedrock_default_router, default_config, detect

_PROVIDER_PREFIXES = ("OPENAI_", "ANTHROPIC_", "AWS_", "GEARSHIFT_")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any provider credentials, plus ``extra``; AWS files
    pointed nowhere so nothing is read from ~/.aws."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PROVIDER_PREFIXES)}
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/gearshift-aws"
    return {**env, **extra}


def ledger_rows(folder: Path) -> list[tuple[str, str, str, int]]:
    with sqlite3.connect(folder / "gearshift.db") as db:
        return list(
            db.execute(
                "SELECT router, chosen_model, served_model, status FROM requests ORDER BY ts"
            )
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[object]]:
    """Processes started by a test, stopped at its end (their output kept for assertions)."""
    procs: list[object] = []
    yield procs
    for proc in procs:
        stop(proc)  # type: ignore[arg-type]


def serve_from_env(tmp_path: Path, env: dict[str, str], procs: list[object]) -> str:
    port = free_port()
    proc = start_serve(["--port", str(port)], cwd=tmp_path, env=env)
    procs.append(proc)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc)
    return url


def test_openai_variables_alone_serve_openai_auto(tmp_path: Path, served: list[object]) -> None:
    with FakeOpenAIServer() as fake:
        env = clean_env(OPENAI_API_KEY="sk-quickstart", OPENAI_BASE_URL=fake.base_url)
        url = serve_from_env(tmp_path, env, served)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="anything", max_retries=0)
        listed = {m.id for m in client.models.list()}
        assert {"openai-auto", "gpt-5-nano", "gpt-5-mini", "gpt-5"} <= listed
        raw = client.chat.completions.with_raw_response.create(
            model="openai-auto", messages=[{"role": "user", "content": "Reset my password?"}]
        )
        answer = raw.parse()
        assert answer.choices[0].message.content == fake.okn.text
        assert raw.headers["x-gearshift-router"] == "openai-auto"
        chosen = raw.headers["x-gearshift-model"]
        assert chosen in {"gpt-5-nano", "gpt-5-mini", "gpt-5"}
        assert fake.received[-1].headers["Authorization"] == "Bearer sk-quickstart"
        assert fake.bodies()[-1]["model"] == chosen
        log = stop(served[0])  # type: ignore[arg-type]
    assert "router openai-auto: gpt-5-nano (gpt-5-nano), gpt-5-mini" in log
    assert f"ledger: {(tmp_path / 'gearshift.db').resolve()}" in log
    assert ledger_rows(tmp_path) == [("openai-auto", chosen, chosen, 200)]


def test_anthropic_variables_alone_serve_anthropic_auto(
    tmp_path: Path, served: list[object]
) -> None:
    with FakeAnthropic(api_key="sk-ant-quickstart") as fake:
        env = clean_env(ANTHROPIC_API_KEY="sk-ant-quickstart", ANTHROPIC_BASE_URL=fake.url)
        url = serve_from_env(tmp_path, env, served)
        models = openai.OpenAI(base_url=f"{url}/v1", api_key="x").models.list()
        assert "anthropic-auto" in {m.id for m in models}
        client = anthropic.Anthropic(base_url=url, api_key="anything", max_retries=0)
        raw = client.messages.with_raw_response.create(
            model="anthropic-auto",
            max_tokens=200,
            messages=[{"role": "user", "content": "Summarise this ticket in one line."}],
        )
        assert raw.parse().content[0].text == fake.knobs.text  # type: ignore[union-attr]
        chosen = raw.headers["x-gearshift-model"]
        assert chosen in {"claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5"}
        assert fake.received[-1].body["model"] == chosen
        stop(served[0])  # type: ignore[arg-type]
    assert ledger_rows(tmp_path) == [("anthropic-auto", chosen, chosen, 200)]


def test_aws_variables_serve_bedrock_routers_and_default_router_arns(
    tmp_path: Path, served: list[object]
) -> None:
    with FakeBedrock(access_key="AKIDQUICKSTART", secret_key="quickstart-secret") as fake:
        env = clean_env(
            AWS_ACCESS_KEY_ID="AKIDQUICKSTART",
            AWS_SECRET_ACCESS_KEY="quickstart-secret",
            AWS_REGION="us-west-2",
            AWS_ENDPOINT_URL_BEDROCK_RUNTIME=fake.url,
        )
        url = serve_from_env(tmp_path, env, served)
        listed = {m.id for m in openai.OpenAI(base_url=f"{url}/v1", api_key="x").models.list()}
        assert {"bedrock-nova-auto", "bedrock-anthropic-auto", "bedrock-meta-auto"} <= listed
        client = bedrock_client(url)
        invoked = {}
        for family, router in (
            ("anthropic.claude", "bedrock-anthropic-auto"),
            ("meta.llama", "bedrock-meta-auto"),
            ("amazon.nova", "bedrock-nova-auto"),
        ):
            arn = f"arn:aws:bedrock:us-west-2:123456789012:default-prompt-router/{family}:1"
            answer = client.converse(
                modelId=arn,
                messages=[{"role": "user", "content": [{"text": "Where is my order?"}]}],
            )
            assert answer["output"]["message"]["content"][0]["text"] == fake.knobs.text
            invoked[router] = answer["trace"]["promptRouter"]["invokedModelId"]
            # signed with the environment's credentials for the environment's region
            assert fake.regions[-1] == "us-west-2"
            vendor = family.split(".")[0]
            assert f"/model/us.{vendor}" in fake.received[-1].path
        stop(served[0])  # type: ignore[arg-type]
    rows = ledger_rows(tmp_path)
    assert [(r[0], r[1], r[3]) for r in rows] == [(k, v, 200) for k, v in invoked.items()]
    assert invoked["bedrock-anthropic-auto"].startswith("bedrock/claude-")


def test_no_credentials_is_one_line_saying_what_to_set(tmp_path: Path) -> None:
    proc = start_serve(["--port", str(free_port())], cwd=tmp_path, env=clean_env())
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_REGION"):
        assert variable in lines[0]
    assert "gearshift init" in lines[0]


# ---- what is detected, without a server ----------------------------------------------------


def test_detection_needs_credentials_and_region_for_bedrock() -> None:
    assert detect({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}) == []
    assert detect({"AWS_ACCESS_KEY_ID": "a", "AWS_REGION": "us-east-1"}) == []
    assert detect({"OPENAI_BASE_URL": "http://localhost:11434/v1"}) == []
    (bearer,) = detect({"AWS_BEARER_TOKEN_BEDROCK": "t", "AWS_DEFAULT_REGION": "eu-west-1"})
    assert bearer.api_key_env == "AWS_BEARER_TOKEN_BEDROCK" and bearer.region == "eu-west-1"
    config = default_config([bearer])
    # Llama 4 is served in US regions only; EU gets the EU inference profiles.
    assert [r["name"] for r in config["routers"]] == ["bedrock-nova-auto", "bedrock-anthropic-auto"]
    assert config["models"][0]["model"] == "eu.amazon.nova-lite-v1:0"
    assert all(m["api_key_env"] == "AWS_BEARER_TOKEN_BEDROCK" for m in config["models"])


def test_default_router_arn_maps_only_to_a_configured_router() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1"
    assert bedrock_default_router(arn, {"bedrock-anthropic-auto": 1}) == "bedrock-anthropic-auto"
    assert bedrock_default_router(arn, {"bedrock-nova-auto": 1}) is None
    user_router = "arn:aws:bedrock:us-east-1:123456789012:prompt-router/anthropic.claude:1"
    assert bedrock_default_router(user_router, {"bedrock-anthropic-auto": 1}) is None


@pytest.mark.parametrize("family", ["openai-gpt", "claude", "nova", "llama"])
def test_current_models_are_light_middle_frontier_of_their_family(family: str) -> None:
    models = current_models(family)
    assert [m.family for m in models] == [family] * 3
    assert [m.tier for m in models] == [1, 2, 3]
    assert all(lookup(m.name) is m for m in models)
