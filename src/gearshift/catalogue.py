"""A small built-in catalogue of well-known models: family, tier, ability, context, price.

The default router must work for models it has never been trained on, so it maps a prompt's
predicted difficulty through each model's *ability*. When the configuration gives neither
``ability`` nor ``tier``, the ability comes from here; ``gearshift audit`` also uses
``family_members`` to propose lighter models of the family a log was sent to.

Values are the maintainers' judgement from public model cards, vendor price pages and public
benchmark tables (MMLU, GPQA, SWE-bench, arena rankings) as of 2025; ``ability`` is a coarse
relative score in [0, 1], not a measurement. ``pricing_provider``/``pricing_ref`` name the
model in ``genai-prices`` (used offline, never updated at run time); ``input_per_mtok`` and
``output_per_mtok`` are list prices in USD per million tokens, kept here as a fallback when
genai-prices does not know a model.

Lookup normalises a name (case, vendor prefixes such as ``openai/`` or Bedrock's
``us.anthropic.``, version/date suffixes such as ``-20240307-v1:0``) and matches the longest
known alias that is a prefix of it, ending at a separator, so ``gpt-4o-mini-2024-07-18`` is
``gpt-4o-mini`` and never ``gpt-4o``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "CatalogueEntry",
    "current_models",
    "entries",
    "family_members",
    "lookup",
    "normalise_name",
]


@dataclass(slots=True, frozen=True)
class CatalogueEntry:
    name: str  # canonical name
    family: str  # e.g. "openai-gpt", "claude", "gemini", "llama"
    tier: int  # 1 light, 2 mid, 3 frontier
    ability: float  # coarse relative ability in [0, 1]
    context_window: int  # tokens, prompt + output
    tools: bool
    vision: bool
    json_mode: bool
    pricing_provider: str  # genai-prices provider id
    pricing_ref: str  # genai-prices model ref
    input_per_mtok: float  # USD per million input tokens (list price, fallback)
    output_per_mtok: float  # USD per million output tokens (list price, fallback)
    aliases: tuple[str, ...] = ()


def _e(
    name: str,
    family: str,
    tier: int,
    ability: float,
    context_k: int,
    caps: str,
    provider: str,
    price: tuple[float, float],
    ref: str | None = None,
    aliases: tuple[str, ...] = (),
) -> CatalogueEntry:
    """Compact constructor: ``caps`` holds letters t (tools), v (vision), j (JSON mode)."""
    return CatalogueEntry(
        name=name,
        family=family,
        tier=tier,
        ability=ability,
        context_window=context_k * 1000,
        tools="t" in caps,
        vision="v" in caps,
        json_mode="j" in caps,
        pricing_provider=provider,
        pricing_ref=ref or name,
        input_per_mtok=price[0],
        output_per_mtok=price[1],
        aliases=aliases,
    )


_ENTRIES: tuple[CatalogueEntry, ...] = (
    # OpenAI
    _e("gpt-3.5-turbo", "openai-gpt", 1, 0.45, 16, "tj", "openai", (0.5, 1.5)),
    _e("gpt-4", "openai-gpt", 3, 0.74, 8, "tj", "openai", (30, 60)),
    _e(
        "gpt-4-turbo",
        "openai-gpt",
        3,
        0.78,
        128,
        "tvj",
        "openai",
        (10, 30),
        aliases=("gpt-4-1106-preview", "gpt-4-0125-preview"),
    ),
    _e(
        "gpt-4o",
        "openai-gpt",
        3,
        0.80,
        128,
        "tvj",
        "openai",
        (2.5, 10),
        aliases=("chatgpt-4o-latest",),
    ),
    _e("gpt-4o-mini", "openai-gpt", 1, 0.62, 128, "tvj", "openai", (0.15, 0.6)),
    _e("gpt-4.1", "openai-gpt", 3, 0.84, 1048, "tvj", "openai", (2, 8)),
    _e("gpt-4.1-mini", "openai-gpt", 2, 0.75, 1048, "tvj", "openai", (0.4, 1.6)),
    _e("gpt-4.1-nano", "openai-gpt", 1, 0.56, 1048, "tvj", "openai", (0.1, 0.4)),
    _e("o1", "openai-gpt", 3, 0.90, 200, "tvj", "openai", (15, 60)),
    _e("o1-mini", "openai-gpt", 2, 0.80, 128, "j", "openai", (1.1, 4.4)),
    _e("o3", "openai-gpt", 3, 0.93, 200, "tvj", "openai", (2, 8)),
    _e("o3-mini", "openai-gpt", 2, 0.85, 200, "tj", "openai", (1.1, 4.4)),
    _e("o4-mini", "openai-gpt", 2, 0.88, 200, "tvj", "openai", (1.1, 4.4)),
    _e(
        "gpt-5",
        "openai-gpt",
        3,
        0.95,
        400,
        "tvj",
        "openai",
        (1.25, 10),
        aliases=("gpt-5-chat-latest", "gpt-5-chat"),
    ),
    _e("gpt-5-mini", "openai-gpt", 2, 0.87, 400, "tvj", "openai", (0.25, 2)),
    _e("gpt-5-nano", "openai-gpt", 1, 0.72, 400, "tvj", "openai", (0.05, 0.4)),
    _e(
        "gpt-oss-120b",
        "gpt-oss",
        2,
        0.80,
        131,
        "tj",
        "groq",
        (0.15, 0.6),
        ref="openai/gpt-oss-120b",
    ),
    _e("gpt-oss-20b", "gpt-oss", 1, 0.68, 131, "tj", "groq", (0.1, 0.5), ref="openai/gpt-oss-20b"),
    # Anthropic
    _e("claude-3-haiku", "claude", 1, 0.50, 200, "tvj", "anthropic", (0.25, 1.25)),
    _e("claude-3-sonnet", "claude", 2, 0.62, 200, "tvj", "anthropic", (3, 15)),
    _e("claude-3-opus", "claude", 3, 0.78, 200, "tvj", "anthropic", (15, 75)),
    _e(
        "claude-3-5-haiku",
        "claude",
        1,
        0.63,
        200,
        "tvj",
        "anthropic",
        (0.8, 4),
        aliases=("claude-3.5-haiku",),
    ),
    _e(
        "claude-3-5-sonnet",
        "claude",
        2,
        0.82,
        200,
        "tvj",
        "anthropic",
        (3, 15),
        aliases=("claude-3.5-sonnet",),
    ),
    _e(
        "claude-3-7-sonnet",
        "claude",
        2,
        0.86,
        200,
        "tvj",
        "anthropic",
        (3, 15),
        aliases=("claude-3.7-sonnet",),
    ),
    _e(
        "claude-sonnet-4",
        "claude",
        2,
        0.89,
        200,
        "tvj",
        "anthropic",
        (3, 15),
        aliases=("claude-4-sonnet",),
    ),
    _e(
        "claude-opus-4",
        "claude",
        3,
        0.92,
        200,
        "tvj",
        "anthropic",
        (15, 75),
        aliases=("claude-4-opus",),
    ),
    _e(
        "claude-opus-4-1",
        "claude",
        3,
        0.93,
        200,
        "tvj",
        "anthropic",
        (15, 75),
        aliases=("claude-opus-4.1",),
    ),
    _e(
        "claude-sonnet-4-5",
        "claude",
        2,
        0.93,
        200,
        "tvj",
        "anthropic",
        (3, 15),
        aliases=("claude-sonnet-4.5",),
    ),
    _e(
        "claude-haiku-4-5",
        "claude",
        1,
        0.82,
        200,
        "tvj",
        "anthropic",
        (1, 5),
        aliases=("claude-haiku-4.5",),
    ),
    _e(
        "claude-opus-4-5",
        "claude",
        3,
        0.95,
        200,
        "tvj",
        "anthropic",
        (5, 25),
        aliases=("claude-opus-4.5",),
    ),
    # Google
    _e(
        "gemini-1.5-flash",
        "gemini",
        1,
        0.58,
        1000,
        "tvj",
        "google",
        (0.075, 0.3),
        aliases=("gemini-flash-1.5",),
    ),
    _e(
        "gemini-1.5-pro",
        "gemini",
        3,
        0.75,
        2000,
        "tvj",
        "google",
        (1.25, 5),
        aliases=("gemini-pro-1.5",),
    ),
    _e("gemini-2.0-flash-lite", "gemini", 1, 0.62, 1000, "tvj", "google", (0.075, 0.3)),
    _e("gemini-2.0-flash", "gemini", 1, 0.72, 1000, "tvj", "google", (0.1, 0.4)),
    _e("gemini-2.5-flash-lite", "gemini", 1, 0.72, 1000, "tvj", "google", (0.1, 0.4)),
    _e("gemini-2.5-flash", "gemini", 2, 0.84, 1000, "tvj", "google", (0.3, 2.5)),
    _e("gemini-2.5-pro", "gemini", 3, 0.92, 1000, "tvj", "google", (1.25, 10)),
    # Meta Llama (prices: typical hosted rates)
    _e(
        "llama-3.2-1b",
        "llama",
        1,
        0.22,
        128,
        "",
        "groq",
        (0.04, 0.04),
        ref="llama-3.2-1b-preview",
        aliases=("llama3-2-1b",),
    ),
    _e(
        "llama-3.2-3b",
        "llama",
        1,
        0.33,
        128,
        "",
        "groq",
        (0.06, 0.06),
        ref="llama-3.2-3b-preview",
        aliases=("llama3-2-3b",),
    ),
    _e(
        "llama-3-8b",
        "llama",
        1,
        0.40,
        8,
        "",
        "groq",
        (0.05, 0.08),
        ref="llama3-8b-8192",
        aliases=("llama3-8b", "meta-llama-3-8b"),
    ),
    _e(
        "llama-3.1-8b",
        "llama",
        1,
        0.43,
        128,
        "t",
        "groq",
        (0.05, 0.08),
        ref="llama-3.1-8b-instant",
        aliases=("llama3-1-8b", "meta-llama-3.1-8b"),
    ),
    _e(
        "llama-3-70b",
        "llama",
        2,
        0.62,
        8,
        "",
        "groq",
        (0.59, 0.79),
        ref="llama3-70b-8192",
        aliases=("llama3-70b", "meta-llama-3-70b"),
    ),
    _e(
        "llama-3.1-70b",
        "llama",
        2,
        0.66,
        128,
        "tj",
        "groq",
        (0.59, 0.79),
        ref="llama-3.1-70b-versatile",
        aliases=("llama3-1-70b", "meta-llama-3.1-70b"),
    ),
    _e(
        "llama-3.3-70b",
        "llama",
        2,
        0.70,
        128,
        "tj",
        "groq",
        (0.59, 0.79),
        ref="llama-3.3-70b-versatile",
        aliases=("llama3-3-70b", "meta-llama-3.3-70b"),
    ),
    _e(
        "llama-3.1-405b",
        "llama",
        3,
        0.76,
        128,
        "tj",
        "together",
        (3.5, 3.5),
        ref="meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo",
        aliases=("llama3-1-405b", "meta-llama-3.1-405b"),
    ),
    _e(
        "llama-4-scout",
        "llama",
        1,
        0.66,
        328,
        "tvj",
        "groq",
        (0.11, 0.34),
        ref="meta-llama/llama-4-scout-17b-16e-instruct",
        aliases=("llama4-scout",),
    ),
    _e(
        "llama-4-maverick",
        "llama",
        2,
        0.74,
        1000,
        "tvj",
        "groq",
        (0.2, 0.6),
        ref="meta-llama/llama-4-maverick-17b-128e-instruct",
        aliases=("llama4-maverick",),
    ),
    # Mistral
    _e(
        "mistral-7b",
        "mistral",
        1,
        0.30,
        32,
        "",
        "mistral",
        (0.25, 0.25),
        aliases=("mistral-7b-instruct", "open-mistral-7b"),
    ),
    _e(
        "mixtral-8x7b",
        "mistral",
        1,
        0.50,
        32,
        "t",
        "mistral",
        (0.7, 0.7),
        aliases=("mixtral-8x7b-instruct", "open-mixtral-8x7b"),
    ),
    _e(
        "mixtral-8x22b",
        "mistral",
        2,
        0.60,
        64,
        "t",
        "mistral",
        (2, 6),
        ref="mixtral-8x22b-instruct",
        aliases=("open-mixtral-8x22b",),
    ),
    _e("mistral-small", "mistral", 1, 0.60, 128, "tj", "mistral", (0.1, 0.3)),
    _e("mistral-medium", "mistral", 2, 0.72, 128, "tvj", "mistral", (0.4, 2)),
    _e("mistral-large", "mistral", 3, 0.76, 128, "tj", "mistral", (2, 6)),
    _e("codestral", "mistral", 2, 0.68, 256, "tj", "mistral", (0.3, 0.9)),
    # Qwen
    _e("qwen2.5-7b", "qwen", 1, 0.48, 128, "tj", "together", (0.3, 0.3), aliases=("qwen-2.5-7b",)),
    _e(
        "qwen2.5-72b", "qwen", 2, 0.72, 128, "tj", "together", (1.2, 1.2), aliases=("qwen-2.5-72b",)
    ),
    _e(
        "qwen3-32b",
        "qwen",
        2,
        0.76,
        128,
        "tj",
        "groq",
        (0.29, 0.59),
        ref="qwen/qwen3-32b",
        aliases=("qwen-3-32b",),
    ),
    _e("qwen3-235b", "qwen", 3, 0.85, 128, "tj", "together", (0.2, 0.6), aliases=("qwen-3-235b",)),
    # DeepSeek
    _e(
        "deepseek-chat",
        "deepseek",
        2,
        0.82,
        128,
        "tj",
        "deepseek",
        (0.27, 1.1),
        aliases=("deepseek-v3",),
    ),
    _e(
        "deepseek-reasoner",
        "deepseek",
        3,
        0.88,
        128,
        "j",
        "deepseek",
        (0.55, 2.19),
        aliases=("deepseek-r1", "r1"),
    ),
    # Amazon Nova
    _e(
        "nova-micro", "nova", 1, 0.42, 128, "tj", "aws", (0.035, 0.14), ref="amazon.nova-micro-v1:0"
    ),
    _e("nova-lite", "nova", 1, 0.52, 300, "tvj", "aws", (0.06, 0.24), ref="amazon.nova-lite-v1:0"),
    _e("nova-pro", "nova", 2, 0.65, 300, "tvj", "aws", (0.8, 3.2), ref="amazon.nova-pro-v1:0"),
    _e(
        "nova-premier",
        "nova",
        3,
        0.78,
        1000,
        "tvj",
        "aws",
        (2.5, 12.5),
        ref="amazon.nova-premier-v1:0",
    ),
)

# The current light / middle / frontier model of each family: what default routers are built over
# (``gearshift serve`` without a config, ``gearshift init``). Updated by hand when a family ships a
# new generation; a test checks each name is catalogued in that family at that tier.
_CURRENT: dict[str, tuple[str, str, str]] = {
    "openai-gpt": ("gpt-5-nano", "gpt-5-mini", "gpt-5"),
    "claude": ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5"),
    "nova": ("nova-lite", "nova-pro", "nova-premier"),
    "llama": ("llama-4-scout", "llama-4-maverick", "llama-3.1-405b"),
}

# Vendor prefixes a name may carry: router/proxy namespaces and Bedrock model-id vendors.
_PREFIX = re.compile(
    r"^(?:(?:openai|anthropic|google|models|vertex_ai|bedrock|groq|together|together_ai|"
    r"mistralai|meta-llama|meta|qwen|deepseek-ai|amazon|openrouter|azure)/)+"
)
_BEDROCK_REGION = re.compile(r"^(?:us|eu|apac|global|regional|us-gov|jp|au|ca)\.")
_BEDROCK_VENDOR = re.compile(
    r"^(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|qwen|openai)\."
)
_SUFFIX = re.compile(r"(?:-v\d+(?::\d+)?|:\d+|@\d+|-instruct(?:-v[\d.]+)?|-latest|-preview)$")
_DATE = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|\d{4})$")
_SEPARATORS = frozenset("-:@._/ ")


def _strip_affixes(name: str, *, dates: bool) -> str:
    n = name.strip().lower()
    if "/" in n and n.startswith("arn:"):
        n = n.rsplit("/", 1)[-1]
    n = _PREFIX.sub("", n)
    n = _BEDROCK_REGION.sub("", n)
    n = _BEDROCK_VENDOR.sub("", n)
    for _ in range(3):  # suffixes stack: "-20240307-v1:0"
        stripped = _SUFFIX.sub("", n)
        if dates:
            stripped = _DATE.sub("", stripped)
        if stripped == n:
            break
        n = stripped
    return n


def normalise_name(name: str) -> str:
    """Lower-case, drop vendor/region prefixes and version/date suffixes: a comparable name."""
    return _strip_affixes(name, dates=True)


@lru_cache(maxsize=1)
def _alias_table() -> tuple[tuple[str, CatalogueEntry], ...]:
    pairs: dict[str, CatalogueEntry] = {}
    for entry in _ENTRIES:
        for alias in (entry.name, *entry.aliases):
            for form in (_strip_affixes(alias, dates=False), normalise_name(alias)):
                # Bedrock/Meta style drops the dots: llama3-1-70b, claude-3-5-haiku
                for spelling in (form, form.replace(".", "-")):
                    pairs.setdefault(spelling, entry)
    # longest alias first, so the most specific prefix wins
    return tuple(sorted(pairs.items(), key=lambda p: (-len(p[0]), p[0])))


def _match(candidate: str) -> CatalogueEntry | None:
    for alias, entry in _alias_table():
        if candidate == alias or (
            candidate.startswith(alias) and candidate[len(alias)] in _SEPARATORS
        ):
            return entry
    return None


@lru_cache(maxsize=4096)
def lookup(name: str) -> CatalogueEntry | None:
    """The catalogue entry for a model name (any common spelling), or None when unknown."""
    # The dated spelling first, so "gpt-4-1106-preview" is GPT-4 Turbo and not GPT-4.
    for form in (_strip_affixes(name, dates=False), normalise_name(name)):
        if not form:
            continue
        for candidate in (form, form.replace(".", "-")):
            found = _match(candidate)
            if found is not None:
                return found
    return None


def family_members(family: str) -> list[CatalogueEntry]:
    """Every catalogued model of a family, lightest tier first, then by price."""
    members = [e for e in _ENTRIES if e.family == family]
    members.sort(key=lambda e: (e.tier, e.input_per_mtok + e.output_per_mtok, e.name))
    return members


def entries() -> tuple[CatalogueEntry, ...]:
    """All catalogue entries, in catalogue order."""
    return _ENTRIES


def current_models(family: str) -> tuple[CatalogueEntry, CatalogueEntry, CatalogueEntry]:
    """The family's current light, middle and frontier models (KeyError for other families)."""
    light, middle, frontier = (_by_name()[n] for n in _CURRENT[family])
    return light, middle, frontier


@lru_cache(maxsize=1)
def _by_name() -> dict[str, CatalogueEntry]:
    return {e.name: e for e in _ENTRIES}
