import pytest

from gearshift.catalogue import entries, family_members, lookup, normalise_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/gpt-4.1-nano", "gpt-4.1-nano"),
        ("gpt-4-1106-preview", "gpt-4-turbo"),
        ("anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku"),
        ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("meta.llama3-1-70b-instruct-v1:0", "llama-3.1-70b"),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("amazon.nova-lite-v1:0", "nova-lite"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("O3", "o3"),
    ],
)
def test_lookup_spellings(name: str, expected: str) -> None:
    entry = lookup(name)
    assert entry is not None, name
    assert entry.name == expected


def test_unknown_names_are_none() -> None:
    assert lookup("my-finetune") is None
    assert lookup("") is None
    # a prefix must end at a separator: "gpt-4" must not swallow "gpt-4x"
    assert lookup("gpt-4x") is None


def test_normalise_name() -> None:
    assert normalise_name("US.Anthropic.Claude-3-Haiku-20240307-v1:0") == "claude-3-haiku"


def test_family_members_lightest_first() -> None:
    claude = family_members("claude")
    assert claude[0].tier == 1
    assert [e.tier for e in claude] == sorted(e.tier for e in claude)
    assert {"claude-3-haiku", "claude-3-5-sonnet", "claude-3-opus"} <= {e.name for e in claude}
    assert family_members("nope") == []


def test_entries_are_sane() -> None:
    names = [e.name for e in entries()]
    assert len(names) == len(set(names))
    for e in entries():
        assert 0 <= e.ability <= 1
        assert e.tier in (1, 2, 3)
        assert e.context_window > 0
        assert e.input_per_mtok >= 0 and e.output_per_mtok >= 0
        assert lookup(e.name) is e
