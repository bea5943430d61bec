"""Routing headers carry free text (the decision's reason, the kind, predictions): one line of
printable ASCII, other characters as '?', at most 300 characters. The fast path (the text is
already printable ASCII) must give exactly what the per-character rule gives."""

from __future__ import annotations

from gearshift.api.context import _header_text


def _per_character(text: str) -> bytes:
    return "".join(c if " " <= c <= "~" else "?" for c in text[:300]).encode("ascii")


def test_header_text_is_printable_ascii_whatever_the_input() -> None:
    samples = [
        "best predicted quality 0.93; tolerance 0.10 -> cheapest model at or above 0.83: small",
        "",
        "tab\there",
        "new\nline",
        "naïve café",
        "\x7f delete",
        "~ tilde and space ",
        "x" * 500,
        "é" * 400,
        *(chr(i) for i in range(0x300)),
    ]
    for text in samples:
        assert _header_text(text) == _per_character(text), repr(text)
    assert _header_text("new\nline") == b"new?line"
    assert len(_header_text("x" * 500)) == 300
