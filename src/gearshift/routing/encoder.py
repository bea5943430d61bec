"""Prompt embeddings from a static sentence encoder (potion-base-8M, MIT, the Minish Lab).

A static encoder is a table of token vectors: a prompt's embedding is the mean of its WordPiece
tokens' rows, L2-normalised — model2vec's recipe, with no network, no framework and no GPU.
potion-base-8M's rows were distilled from a sentence transformer (bge-base-en-v1.5), so prompts
that *mean* the same land close even when they share no word, which the router's n-grams cannot
see: "fix my segfault" and "why does my C program crash" are both code, and a model's record on
one tells about the other.

The table ships inside the package (``data/potion_base_8m.npz``: 29,528 tokens × 256 dimensions,
int8 with one scale per token, 7.0 MB) and is built from the upstream weights by
``python -m gearshift.routing.build_encoder`` (``make encoder``; provenance, hashes and licence
in ``data/potion_base_8m.LICENSE``). Tokenisation is BERT's uncased WordPiece in pure Python
(the ``tokenizers`` package gives the same ids on ASCII text), with a bounded cache per word:
the words of real traffic repeat, so the work per prompt is a dict lookup per word.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from gearshift.errors import ConfigError

__all__ = ["DEFAULT_PATH", "DIMENSIONS", "FORMAT", "StaticEncoder", "default_encoder"]

FORMAT = "static-encoder-1"
DEFAULT_PATH = Path(__file__).parent / "data" / "potion_base_8m.npz"
DIMENSIONS = 256
CONTINUATION = "##"
MAX_WORD_CHARS = 100  # BERT's max_input_chars_per_word: longer "words" are unknown
WORD_CACHE = 50_000  # distinct words remembered (about 6 MB, measured); cleared when full

FloatArray = npt.NDArray[np.float64]
# BERT's basic tokenizer on lower-cased text: runs of non-space, non-punctuation characters, and
# each ASCII punctuation character on its own (other scripts: see _split_unicode)
_WORDS = re.compile(r"[^\s!-/:-@\[-`{-~]+|[!-/:-@\[-`{-~]")


def _split_unicode(text: str) -> str:
    """Non-ASCII text as BERT normalises it: accents stripped, Unicode punctuation and CJK
    ideographs set apart as words of their own, control characters dropped."""
    out = []
    for c in unicodedata.normalize("NFD", text):
        cat = unicodedata.category(c)
        if cat == "Mn":
            continue
        if cat.startswith("P") or _is_cjk(ord(c)):
            out.append(f" {c} ")
        elif cat.startswith("C") and c not in "\t\n\r":
            continue
        else:
            out.append(c)
    return "".join(out)


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


@dataclass(slots=True)
class StaticEncoder:
    vocab: dict[str, int]  # WordPiece token -> row
    vectors: npt.NDArray[np.int8]  # (V, D): each row's values / its scale
    scales: npt.NDArray[np.float32]  # (V,)
    _words: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)

    @property
    def dimensions(self) -> int:
        return int(self.vectors.shape[1])

    def _pieces(self, word: str) -> tuple[int, ...]:
        """Greedy longest-match-first WordPiece of one word (empty when any part is unknown)."""
        vocab = self.vocab
        if len(word) > MAX_WORD_CHARS:
            return ()
        out: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else CONTINUATION + word[start:end]
                row = vocab.get(piece)
                if row is not None:
                    out.append(row)
                    break
                end -= 1
            else:
                return ()  # BERT maps the whole word to [UNK], which model2vec drops
            start = end
        return tuple(out)

    def token_ids(self, text: str) -> list[int]:
        lowered = text.lower()
        if not lowered.isascii():
            lowered = _split_unicode(lowered)
        return self._word_ids(_WORDS.findall(lowered))

    def _word_ids(self, found: list[str]) -> list[int]:
        words = self._words
        if len(words) > WORD_CACHE:
            words.clear()
        pieces = list(map(words.get, found))  # C-speed when every word is cached (the usual)
        if None in pieces:
            for j, got in enumerate(pieces):
                if got is None:
                    pieces[j] = words[found[j]] = self._pieces(found[j])
        return list(chain.from_iterable(cast(list[tuple[int, ...]], pieces)))

    def _unit_means(self, batch_ids: list[list[int]]) -> FloatArray:
        """(N, D) unit vectors: the mean of each prompt's token rows (zeros when it has none),
        gathered prompt by prompt (a whole batch's rows would not fit in cache) with the same
        arithmetic as one prompt's, so one and many agree exactly."""
        out = np.zeros((len(batch_ids), self.dimensions))
        for j, ids in enumerate(batch_ids):
            if ids:
                out[j] = self._unit_mean(ids)
        return out

    def _unit_mean(self, ids: list[int]) -> FloatArray:
        if not ids:
            return np.zeros(self.dimensions)
        total = np.dot(self.scales.take(ids), self.vectors.take(ids, 0).astype(np.float32))
        v: FloatArray = total.astype(np.float64)
        norm = math.sqrt(float(v @ v))
        if norm > 0.0:
            v /= norm
        return v

    def embed(self, text: str) -> FloatArray:
        """(D,) unit vector for a text: the mean of its WordPiece tokens' rows (zeros if none)."""
        return self._unit_mean(self.token_ids(text))

    def embed_words(self, words: list[str]) -> FloatArray:
        """``embed`` of words already split, lower-cased and free of punctuation
        (``Features.words``: the router's focus window), without splitting them again."""
        return self._unit_mean(self._word_ids(words))

    def embed_many_words(self, batch: list[list[str]]) -> FloatArray:
        return self._unit_means([self._word_ids(words) for words in batch])

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PATH) -> StaticEncoder:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                tokens = data["tokens"].tolist()
                vectors = data["vectors"]
                scales = data["scales"]
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot load prompt encoder {path}: {exc}") from None
        if meta.get("format") != FORMAT or vectors.dtype != np.int8:
            raise ConfigError(f"prompt encoder {path} is not a {FORMAT} table")
        if vectors.shape != (len(tokens), DIMENSIONS) or scales.shape != (len(tokens),):
            raise ConfigError(f"prompt encoder {path} has inconsistent arrays")
        vocab = {t: i for i, t in enumerate(tokens)}
        return cls(vocab, vectors, scales.astype(np.float32))


@functools.cache
def default_encoder() -> StaticEncoder:
    """The bundled table, loaded once per process (about 40 ms)."""
    return StaticEncoder.load(DEFAULT_PATH)
