"""Every setting in config.py is documented in docs/configuration.md (a setting nobody can find
is a setting nobody can use)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from gearshift.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _settings(model: type[BaseModel], prefix: str = "") -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        names.append(prefix + name)
        for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
            inner = getattr(candidate, "__args__", (candidate,))
            for kind in (candidate, *inner):
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    names += _settings(kind, f"{prefix}{name}.")
    return names


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    settings = _settings(Settings)
    assert "server.max_body_bytes" in settings and "models.price.input_per_mtok" in settings
    missing = [s for s in settings if f"`{s.rsplit('.', 1)[-1]}`" not in text]
    assert not missing, f"undocumented settings in docs/configuration.md: {missing}"
