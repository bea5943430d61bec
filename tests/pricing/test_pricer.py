"""Pricing: exact costs pinned for config overrides and genai-prices models, cache and reasoning
tokens, unknown models, and agreement with genai-prices' own calculator across its catalogue."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gearshift.chat import Usage
from gearshift.config import parse_settings
from gearshift.pricing import Pricer

D = Decimal


def settings_pricer() -> Pricer:
    settings = parse_settings(
        {
            "models": [
                {
                    "name": "small",
                    "base_url": "http://127.0.0.1:9100/v1",
                    "tier": 1,
                    "price": {"input_per_mtok": 0.25, "output_per_mtok": 1.25},
                },
                {
                    "name": "large",
                    "base_url": "http://127.0.0.1:9100/v1",
                    "model": "large-2025",
                    "tier": 3,
                    "price": {"input_per_mtok": 15, "output_per_mtok": 75},
                },
                {
                    "name": "cached",
                    "price": {
                        "input_per_mtok": "3",
                        "output_per_mtok": "15",
                        "cache_read_per_mtok": "0.3",
                        "cache_write_per_mtok": "3.75",
                        "reasoning_per_mtok": "20",
                    },
                },
                # no price block: genai-prices by upstream id, provider from the kind
                {"name": "mini", "model": "gpt-4o-mini", "base_url": "http://127.0.0.1:1/v1"},
                {"name": "sonnet", "provider": "anthropic", "model": "claude-3-5-sonnet-20241022"},
                # a price override beats genai-prices even for a model it knows
                {
                    "name": "gpt-4o-discount",
                    "model": "gpt-4o",
                    "price": {"input_per_mtok": 1, "output_per_mtok": 2},
                },
                {"name": "mystery", "model": "no-such-model-xyz"},
            ]
        }
    )
    return Pricer.from_settings(settings)


@pytest.fixture(scope="module")
def pricer() -> Pricer:
    return settings_pricer()


def test_config_prices_exact(pricer: Pricer) -> None:
    q = pricer.cost("small", Usage(input_tokens=1000, output_tokens=500))
    assert q.cost_usd == D("0.000875")
    assert q.source == "config"
    assert (q.input_per_mtok, q.output_per_mtok) == (D("0.25"), D("1.25"))
    q = pricer.cost("large", Usage(input_tokens=1234, output_tokens=567))
    # 1234 * 15 / 1e6 + 567 * 75 / 1e6
    assert q.cost_usd == D("0.018510") + D("0.042525")
    assert q.cost_usd == D("0.061035")


def test_config_float_prices_are_exact_decimals(pricer: Pricer) -> None:
    # 0.1 + 0.2 style float noise must not leak in: YAML floats become exact decimals
    q = pricer.cost("small", Usage(input_tokens=3, output_tokens=7))
    assert q.cost_usd == D("0.00000075") + D("0.00000875")


def test_cache_and_reasoning_tokens_with_own_rates(pricer: Pricer) -> None:
    usage = Usage(
        input_tokens=10_000,
        output_tokens=2_000,
        cache_read_tokens=6_000,
        cache_write_tokens=1_000,
        reasoning_tokens=1_500,
    )
    q = pricer.cost("cached", usage)
    # uncached 3000*3 + read 6000*0.3 + write 1000*3.75 + plain out 500*15 + reasoning 1500*20
    expected = (D(9000) + D(1800) + D(3750) + D(7500) + D(30000)) / D(1_000_000)
    assert q.cost_usd == expected == D("0.05205")
    assert q.reasoning_per_mtok == D(20)


def test_cache_and_reasoning_without_own_rates_fall_back(pricer: Pricer) -> None:
    usage = Usage(input_tokens=10_000, output_tokens=2_000, cache_read_tokens=6_000,
                  reasoning_tokens=1_500)  # fmt: skip
    q = pricer.cost("small", usage)
    # no cache/reasoning rate: every input token at 0.25, every output token at 1.25
    assert q.cost_usd == D("0.0025") + D("0.0025")
    assert q.cache_read_per_mtok == D("0.25") and q.reasoning_per_mtok == D("1.25")


def test_genai_prices_through_config_without_price(pricer: Pricer) -> None:
    q = pricer.cost("mini", Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=200))
    # gpt-4o-mini: 0.15 in, 0.6 out, 0.075 cache read
    assert q.cost_usd == D("0.00012") + D("0.000015") + D("0.0003")
    assert q.source == "genai-prices" and q.provider == "openai"
    q = pricer.cost(
        "sonnet",
        Usage(
            input_tokens=5000, output_tokens=100, cache_read_tokens=1000, cache_write_tokens=2000
        ),
    )
    # claude-3-5-sonnet: 3 in, 15 out, 0.3 read, 3.75 write
    assert q.cost_usd == D("0.006") + D("0.0003") + D("0.0075") + D("0.0015")
    assert q.provider == "anthropic"


def test_override_beats_genai_prices(pricer: Pricer) -> None:
    q = pricer.cost("gpt-4o-discount", Usage(input_tokens=1_000_000, output_tokens=1_000_000))
    assert q.cost_usd == D(3) and q.source == "config"


@pytest.mark.parametrize(
    ("ref", "usage", "expected"),
    [
        ("gpt-4o", Usage(input_tokens=1000, output_tokens=500), D("0.0075")),
        ("gpt-4o", Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=400), D("0.007")),
        ("claude-3-5-haiku-20241022", Usage(input_tokens=2000, output_tokens=1000), D("0.0056")),
        (
            "o3-mini",
            Usage(input_tokens=100, output_tokens=1000, reasoning_tokens=800),
            D("0.00451"),
        ),
        ("openai/gpt-4o-mini", Usage(input_tokens=1_000_000), D("0.15")),
    ],
)
def test_bare_model_names(ref: str, usage: Usage, expected: Decimal) -> None:
    assert Pricer().cost(ref, usage).cost_usd == expected


def test_tiered_prices_switch_at_threshold() -> None:
    p = Pricer()
    small = p.cost("gemini-2.5-pro", Usage(input_tokens=200_000, output_tokens=1000))
    big = p.cost("gemini-2.5-pro", Usage(input_tokens=200_001, output_tokens=1000))
    assert small.input_per_mtok == D("1.25") and small.output_per_mtok == D("10")
    assert big.input_per_mtok == D("2.5") and big.output_per_mtok == D("15")
    assert small.cost_usd == D("0.25") + D("0.01")
    assert big.cost_usd == D("200001") * D("2.5") / D(10**6) + D("0.015")


def test_unknown_model_costs_zero_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    p = settings_pricer()
    with caplog.at_level(logging.WARNING, logger="gearshift.pricing"):
        caplog.clear()
        for _ in range(3):
            q = p.cost("mystery", Usage(input_tokens=10, output_tokens=10))
            assert q.cost_usd == 0 and q.source == "unknown"
        bare = p.cost("totally-unknown-model", Usage(input_tokens=10))
    assert bare.source == "unknown" and bare.cost_usd == 0
    assert p.estimate("totally-unknown-model", 1000, 1000) == 0.0
    messages = [r.getMessage() for r in caplog.records]
    assert sum("totally-unknown-model" in m for m in messages) == 1
    # "mystery" was resolved (and warned about) when the pricer was built, not again per call
    assert sum("mystery" in m for m in messages) == 0


def test_inconsistent_usage_never_negative(pricer: Pricer) -> None:
    q = pricer.cost("cached", Usage(input_tokens=10, cache_read_tokens=100, reasoning_tokens=5))
    assert q.cost_usd == D(100) * D("0.3") / D(10**6)
    assert q.cost_usd >= 0


def test_float_estimator(pricer: Pricer) -> None:
    assert pricer.rates("small") == (0.25e-6, 1.25e-6)
    assert pricer.estimate("large", 1000, 100) == pytest.approx(0.015 + 0.0075)
    assert pricer.estimate("mini", 1_000_000, 0) == pytest.approx(0.15)
    assert pricer.rates("gpt-4o") == (2.5e-6, 1e-5)


def test_historical_date_uses_its_own_price() -> None:
    # an old date must still resolve (date-bounded prices), and give the same for a stable model
    then = datetime(2025, 1, 15, tzinfo=UTC)
    q = Pricer().cost("gpt-4o-mini", Usage(input_tokens=1_000_000), at=then)
    assert q.cost_usd == D("0.15")


def test_pricing_import_does_not_load_genai_prices() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gearshift.pricing, gearshift.ledger;"
        "from gearshift.pricing import Pricer;"
        "from gearshift.config import parse_settings;"
        "s = parse_settings({'models': [{'name': 'a', 'price': "
        "{'input_per_mtok': 1, 'output_per_mtok': 2}}]});"
        "Pricer.from_settings(s).cost('a', __import__('gearshift.chat').chat.Usage(1, 1));"
        "print('genai_prices' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


SIMPLE_KEYS = {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok"}


def _catalogue_sample() -> list[tuple[object, object]]:
    from genai_prices import data_snapshot
    from genai_prices.types import ModelPrice

    pairs: list[tuple[object, object]] = []
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            prices = model.prices if isinstance(model.prices, ModelPrice) else None
            if prices is None:
                continue
            keys = {k for k, v in prices.__dict__.items() if v is not None and k.endswith("mtok")}
            if "input_mtok" in keys and keys <= SIMPLE_KEYS | {"output_reasoning_mtok"}:
                pairs.append((provider, model))
    return pairs


def test_agrees_with_genai_prices_across_catalogue() -> None:
    """Our arithmetic equals genai-prices' own calculator, to the last digit, on hundreds of
    models (tiers, cache reads and writes, reasoning rates included)."""
    from genai_prices import Usage as GenaiUsage

    from gearshift.pricing.catalog import _rates_from
    from gearshift.pricing.rates import quote

    pairs = _catalogue_sample()
    assert len(pairs) > 300
    usages = [
        (Usage(123_457, 9_876, 23_456, 3_210, 4_321), dict(input_tokens=123_457,
         output_tokens=9_876, cache_read_tokens=23_456, cache_write_tokens=3_210,
         output_reasoning_tokens=4_321)),
        (Usage(250_001, 7, 0, 0, 0), dict(input_tokens=250_001, output_tokens=7)),
        (Usage(1, 1, 0, 0, 0), dict(input_tokens=1, output_tokens=1)),
    ]  # fmt: skip
    now = datetime.now(tz=UTC)
    for provider, model in pairs:
        rates = _rates_from(provider, model, now)
        assert rates is not None
        for ours, theirs in usages:
            expected = model.calc_price(GenaiUsage(**theirs), provider, genai_request_timestamp=now)  # type: ignore[attr-defined]
            assert quote(rates, ours).cost_usd == expected.total_price, (provider, model)


@pytest.mark.parametrize(
    ("config", "provider", "expected"),
    [
        # the provider comes from a public base_url when genai-prices knows its API address
        (
            {"model": "llama-3.3-70b-versatile", "base_url": "https://api.groq.com/openai/v1"},
            "groq",
            D("1.38"),
        ),
        (
            {
                "model": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
                "base_url": "https://api.together.xyz/v1",
            },
            "together",
            D("1.76"),
        ),
        # the bedrock provider kind maps to genai-prices' "aws"
        (
            {"provider": "bedrock", "model": "anthropic.claude-3-5-haiku-20241022-v1:0"},
            "aws",
            D("4.80"),
        ),
        # a loopback base_url (vLLM, a fake) says nothing: the kind and model id decide
        ({"model": "gpt-4o", "base_url": "http://127.0.0.1:9/v1"}, "openai", D("12.5")),
    ],
)
def test_provider_resolution(config: dict[str, str], provider: str, expected: Decimal) -> None:
    from gearshift.config import ModelConfig

    model = ModelConfig(name="m", **config)  # type: ignore[arg-type]
    q = Pricer([model]).cost("m", Usage(input_tokens=1_000_000, output_tokens=1_000_000))
    assert (q.provider, q.cost_usd, q.source) == (provider, expected, "genai-prices")


def test_genai_prices_never_updates_from_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pricing reads the bundled snapshot only: an UpdatePrices start would be a bug."""
    import genai_prices

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pricing tried to update prices from the network")

    monkeypatch.setattr(genai_prices.UpdatePrices, "__init__", refuse)
    monkeypatch.setattr(genai_prices.UpdatePrices, "start", refuse, raising=False)
    p = Pricer()
    assert p.cost("gpt-4o-mini", Usage(input_tokens=10**6)).cost_usd == D("0.15")
    from genai_prices import data_snapshot

    assert data_snapshot.get_snapshot().from_auto_update is False
