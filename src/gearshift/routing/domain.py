"""A domain prior for the default router: which domain a prompt is from, and how often that
domain needed the strong model.

Why: on the labelled data the need for a strong model depends far more on a prompt's domain (an
MMLU subject, a RouterArena category, grade-school math) than on anything else the text shows.
Within a domain the n-gram head ranks prompts barely better than chance (AUC 0.53 inside MMLU
subjects), and its strong regularisation, right for the noisy per-prompt target, keeps it from
learning the domains themselves. A topic classifier is fitted to a cleaner signal, the domain
labels, so it recognises domains much better (76% of MMLU subjects out of fold).

The classifier is a multinomial naive Bayes over the prompt's distinct n-grams (the same
``Features.tokens`` the head reads), restricted to the most frequent ``vocab_size`` grams. Its
output is the expected gain ``Σ_c P(c | prompt) · gain_c``, where ``gain_c`` is the mean training
target of domain c; the default router blends its logit with the head's (``TextModel``). Scoring
is a set intersection, one (hits × K) sum, a softmax and a dot product: numpy only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gearshift.routing.features import Features

__all__ = [
    "GAIN_CLIP",
    "DomainPrior",
    "blend_logit",
    "fit_domain_prior",
    "gain_logit",
    "logits",
    "most_frequent",
]

FloatArray = npt.NDArray[np.float64]

# 4,000 grams and domains of 10+ rows (~85 classes) scored as well in 5-fold CV as 60,000 grams
# and 5+ rows (~105), and keep the (V, K) matrix small enough to stay in cache between requests
VOCAB_SIZE = 4_000
ALPHA = 0.03  # additive smoothing of the per-domain gram frequencies (chosen by 5-fold CV)
MIN_DOMAIN_ROWS = 10  # rarer domains are pooled into one, so each class has a usable estimate
OTHER = "(other)"
# Naive Bayes counts every gram as independent evidence, but a prompt's bigrams repeat its
# unigrams, so posteriors come out far too sure: two first-person words put a help-desk question
# in MMLU's moral scenarios at 97%. Dividing the summed log-likelihoods by 3 keeps domain
# evidence from long prompts decisive and lets a few stray words count for little; 5-fold CV is
# unchanged (MMLU -0.0004, GSM8K +0.0007, RouterArena +0.005 against 1).
TEMPERATURE = 3.0
GAIN_CLIP = 1e-4


@dataclass(slots=True)
class DomainPrior:
    domains: list[str]
    vocab: dict[str, int]
    log_likelihood: npt.NDArray[np.float32]  # (V, K): log P(gram | domain)
    log_prior: FloatArray  # (K,)
    gains: FloatArray  # (K,): mean training target of each domain
    temperature: float = 1.0  # divides the summed log-likelihoods (see TEMPERATURE)

    def expected_gain(self, tokens: set[str]) -> float:
        vocab = self.vocab
        # sorted: a float32 sum depends on its order, and set order on the process's hash seed
        idx = sorted(map(vocab.__getitem__, vocab.keys() & tokens))
        z = (
            self.log_prior + self.log_likelihood[idx].sum(axis=0) / self.temperature
            if idx
            else self.log_prior
        )
        p = np.exp(z - z.max())
        return float(p.dot(self.gains) / p.sum())

    def expected_gains(self, batch: Sequence[Features]) -> FloatArray:
        # a per-prompt loop: gathering all hits and np.add.reduceat measured 1.7x slower
        return np.asarray([self.expected_gain(f.tokens) for f in batch], dtype=np.float64)


def most_frequent(counts: Counter[str], n: int) -> list[tuple[str, int]]:
    """The ``n`` most frequent grams, ties broken by the gram itself (``Counter.most_common``
    breaks them by insertion order, which follows set iteration and so the process's hash seed)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def fit_domain_prior(
    feats: Sequence[Features],
    domains: Sequence[str],
    target: FloatArray,
    weights: FloatArray | None = None,
    *,
    vocab_size: int = VOCAB_SIZE,
    alpha: float = ALPHA,
    temperature: float = TEMPERATURE,
) -> DomainPrior:
    """Naive Bayes over distinct grams; each domain's gain is its (weighted) mean target.

    Rows of weight 0 (labels not to be trained on) are left out entirely, counts included.
    """
    if weights is not None:
        kept = [i for i, w in enumerate(weights) if w > 0]
        feats = [feats[i] for i in kept]
        domains = [domains[i] for i in kept]
        target = np.asarray(target)[kept]
        weights = np.asarray(weights)[kept]
    sizes = Counter(domains)
    labels = [d if sizes[d] >= MIN_DOMAIN_ROWS else OTHER for d in domains]
    names = sorted(set(labels))
    column = {d: j for j, d in enumerate(names)}
    counts: Counter[str] = Counter()
    for f in feats:
        counts.update(f.tokens)
    words = sorted(g for g, n in most_frequent(counts, vocab_size) if n >= 2)
    vocab = {g: i for i, g in enumerate(words)}
    per_domain = np.zeros((len(words), len(names)))
    rows = np.zeros(len(names))
    for f, label in zip(feats, labels, strict=True):
        j = column[label]
        rows[j] += 1
        hits = [vocab[g] for g in vocab.keys() & f.tokens]
        per_domain[hits, j] += 1.0
    smoothed = per_domain + alpha
    log_likelihood = np.log(smoothed / smoothed.sum(axis=0, keepdims=True))
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    gains = np.zeros(len(names))
    for j, name in enumerate(names):
        sel = np.asarray([lab == name for lab in labels])
        gains[j] = float(np.average(target[sel], weights=w[sel])) if w[sel].sum() > 0 else 0.5
    return DomainPrior(
        domains=names,
        vocab=vocab,
        log_likelihood=log_likelihood.astype(np.float32),
        log_prior=np.log(rows / rows.sum()),
        gains=gains,
        temperature=temperature,
    )


def gain_logit(p: float) -> float:
    """Logit of one probability, clipped like ``logits`` (the single-prompt path)."""
    p = min(max(p, GAIN_CLIP), 1 - GAIN_CLIP)
    return math.log(p / (1 - p))


def logits(p: FloatArray | float) -> FloatArray:
    """Logits of probabilities, clipped to [GAIN_CLIP, 1 − GAIN_CLIP]."""
    q = np.clip(p, GAIN_CLIP, 1 - GAIN_CLIP)
    out: FloatArray = np.log(q / (1 - q))
    return out


def blend_logit(
    blend: Sequence[float], head_logit: FloatArray, gain: FloatArray | float
) -> FloatArray:
    """The default router's score before calibration: ``a·head_logit + b·logit(gain) + c``.

    Used by training (``build_default``) and batch scoring (``TextModel.predict_many``); the
    single-prompt path (``TextModel._predict_one``) computes the same in plain floats with
    ``gain_logit``, which clips alike, because numpy's per-call overhead matters there.
    """
    a, b, c = blend
    out: FloatArray = a * head_logit + b * logits(gain) + c
    return out
