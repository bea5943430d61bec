"""``gearshift init``: an annotated gearshift.yaml that validates and serves as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import openai
import pytest
import yaml
from pydantic import BaseModel
from tests.conftest import free_port
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.test_quickstart import clean_env, ledger_rows
from tests.serve_process import start_serve, stop, wait_healthy

from gearshift.cli.main import main
from gearshift.config import Settings, load_settings


def _setting_names(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        names.add(name)
        for kind in (field.annotation, *getattr(field.annotation, "__args__", ())):
            for inner in (kind, *getattr(kind, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    names |= _setting_names(inner)
    return names


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in os.environ.keys() - clean_env().keys():
        monkeypatch.delenv(name)
    return tmp_path


def test_init_writes_every_setting_and_round_trips_through_serve(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAIServer() as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-init")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        assert main(["init"]) == 0
        assert "wrote gearshift.yaml: openai-auto (3 models)" in capsys.readouterr().out
        text = (in_tmp / "gearshift.yaml").read_text()
        written = {m.group(1) for m in re.finditer(r"^[#\s-]*(\w+):", text, re.MULTILINE)}
        assert _setting_names(Settings) - written == set()
        settings = load_settings(in_tmp / "gearshift.yaml")
        assert [r.name for r in settings.routers] == ["openai-auto"]
        assert {m.base_url for m in settings.models} == {fake.base_url}
        assert yaml.safe_load(text)["models"][0]["api_key_env"] == "OPENAI_API_KEY"

        port = free_port()
        env = clean_env(OPENAI_API_KEY="sk-init")  # the URL comes from the file now
        proc = start_serve(["--config", "gearshift.yaml", "--port", str(port)], cwd=in_tmp, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc)
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
            raw = client.chat.completions.with_raw_response.create(
                model="openai-auto", messages=[{"role": "user", "content": "Refund status?"}]
            )
            assert raw.parse().choices[0].message.content == fake.okn.text
            chosen = raw.headers["x-gearshift-model"]
        finally:
            stop(proc)
    assert ledger_rows(in_tmp) == [("openai-auto", chosen, chosen, 200)]


def test_init_refuses_to_overwrite_without_force(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_tmp / "gearshift.yaml").write_text("# mine\n")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    assert main(["init"]) == 1
    assert "gearshift.yaml already exists; pass --force" in capsys.readouterr().err
    assert (in_tmp / "gearshift.yaml").read_text() == "# mine\n"
    assert main(["init", "--force"]) == 0
    assert load_settings(in_tmp / "gearshift.yaml").routers[0].name == "anthropic-auto"


def test_init_for_named_providers_without_credentials(in_tmp: Path) -> None:
    assert (
        main(["init", "--anthropic", "--bedrock", "--region", "eu-central-1", "--out", "x.yaml"])
        == 0
    )
    settings = load_settings(in_tmp / "x.yaml")
    assert [r.name for r in settings.routers] == [
        "anthropic-auto",
        "bedrock-nova-auto",
        "bedrock-anthropic-auto",
    ]
    claude = settings.model("claude-haiku-4-5")
    assert claude is not None and claude.api_key_env == "ANTHROPIC_API_KEY"
    nova = settings.model("bedrock/nova-lite")
    assert nova is not None and nova.region == "eu-central-1"
    assert nova.upstream_model == "eu.amazon.nova-lite-v1:0"


def test_init_without_credentials_or_flags_says_what_to_do(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "OPENAI_API_KEY" in err and "gearshift init --openai" in err
    assert not (in_tmp / "gearshift.yaml").exists()
