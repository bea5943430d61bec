"""The seed's own examples, through the bundled default router and through the real gateway.

Light help-desk questions must be predicted easier than heavy analysis requests over one Claude
candidate set, the lock-free queue prompt must be code and harder than small talk, and with the
documented two-tier configuration (``tier: 1`` at $0.25/$1.25, ``tier: 3`` at $15/$75, tolerance
0.1) the gateway must serve the light prompts on the tier-1 model and the heavy ones on tier 3.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import Running, start_gateway, upstream, upstream_server

from gearshift.routing import default_predictor, prompt_request
from gearshift.routing.features import extract
from gearshift.routing.scoring import profiles_for_names

__all__ = ["start_gateway", "upstream", "upstream_server"]  # pytest fixtures, imported for use

LIGHT = [
    "What's the office Wi-Fi password?",
    "What's the return policy?",
    "List employee holidays",
    "What's the renewal date on this contract?",
]

TEN_K = """Summarize the key risk disclosures in this 10-K filing: identify the five most material
risks, explain how each could affect revenue, margins and liquidity over the next two fiscal
years, and flag any risk whose wording changed from last year's filing.

Item 1A. Risk Factors. Our business depends on a small number of enterprise customers; in fiscal
2024 our ten largest customers accounted for 41% of revenue, and the loss of any of them could
materially reduce our revenue. We rely on third-party cloud infrastructure providers, and any
disruption, capacity constraint or price increase could impair service availability and raise our
cost of revenue. Our credit facility contains covenants that limit additional indebtedness and
require a minimum interest coverage ratio of 3.0x; a breach could accelerate repayment of the
$450 million outstanding. We are subject to evolving data-protection regulation in the European
Union and several U.S. states, and non-compliance could result in fines of up to 4% of global
turnover. Foreign currency fluctuations affected 28% of our revenue, which is denominated in euros
and pounds sterling. Goodwill of $1.2 billion from the acquisition of Datastream may be impaired
if the acquired business underperforms our projections."""

INSURANCE = """Can you help me compare insurance policies based on my medical history? I'm 46,
have type 2 diabetes managed with metformin, had knee surgery in 2021, and see a cardiologist
twice a year for mild hypertension. Plan A: $420/month premium, $3,000 deductible, 20%
coinsurance after deductible, out-of-pocket maximum $7,500, specialist copay $60, tier-2 drugs
$45. Plan B: $610/month, $1,000 deductible, 10% coinsurance, out-of-pocket maximum $4,000,
specialist copay $30, tier-2 drugs $20, but my cardiologist is out of network. Plan C: an HSA-
eligible plan at $350/month with a $5,500 deductible and a $1,000 employer HSA contribution.
Estimate my expected annual cost under each plan for a typical year and for a year with another
surgery, and explain which plan you would choose and why."""

COMPENSATION = (
    "Generate a compensation benchmarking summary for senior backend engineers across Berlin, "
    "London and Austin, with percentiles and equity."
)

VENDOR = """Summarize this 12-page vendor agreement: list the parties' obligations, payment terms,
service levels and credits, liability caps, indemnities, termination rights and renewal terms,
and flag every clause that is unusual or unfavourable to us as the customer.

MASTER SERVICES AGREEMENT. This Agreement is entered into between Northwind Logistics GmbH
("Customer") and Acme Cloud Services Ltd ("Vendor"). 1. Services. Vendor shall provide the
hosted warehouse management platform described in Schedule A, including implementation, support
and maintenance. 2. Fees. Customer shall pay the fees in Schedule B within 45 days of invoice;
late payments accrue interest at 1.5% per month. Vendor may increase fees by up to 9% on each
anniversary. 3. Service Levels. Vendor shall use commercially reasonable efforts to achieve
99.5% monthly availability; service credits are Customer's sole and exclusive remedy and shall
not exceed 5% of the monthly fee. 4. Term. The initial term is 36 months and renews
automatically for successive 24-month terms unless either party gives 180 days' written notice.
5. Liability. Each party's aggregate liability is capped at the fees paid in the preceding three
months, excluding Customer's payment obligations. 6. Indemnity. Customer shall indemnify Vendor
against all claims arising from Customer data. 7. Termination. Vendor may terminate for
convenience on 30 days' notice; Customer may terminate only for material breach uncured for 60
days. 8. Data. On termination Vendor will retain Customer data for 15 days, after which it may
be deleted without notice. 9. Governing law: the laws of Delaware."""

HEAVY = [TEN_K, INSURANCE, COMPENSATION, VENDOR]
LOCK_FREE = (
    "Write a lock-free multi-producer multi-consumer queue in C++ with correct memory ordering "
    "and explain the ABA problem."
)
CLAUDE = ["claude-3-5-haiku", "claude-sonnet-4", "claude-opus-4"]


def _predict(text: str) -> tuple[float, list[float]]:
    return default_predictor().predict(extract(prompt_request(text)), profiles_for_names(CLAUDE))


def test_light_help_desk_questions_are_easier_than_heavy_analysis() -> None:
    light = [_predict(t) for t in LIGHT]
    heavy = [_predict(t) for t in HEAVY]
    assert max(d for d, _ in light) < min(d for d, _ in heavy)
    # and per model: the cheapest candidate is expected to do better on every light prompt
    for model in range(len(CLAUDE)):
        assert max(q[model] for _, q in heavy) < min(q[model] for _, q in light)


def test_lock_free_queue_is_code_and_harder_than_small_talk() -> None:
    queue = extract(prompt_request(LOCK_FREE))
    assert queue.kind == "code"
    assert _predict(LOCK_FREE)[0] > _predict("hi, how are you?")[0]


def test_distinct_prompts_keep_distinct_difficulties() -> None:
    """Ranking is never thrown away: 1,000 distinct prompts, >= 95% distinct difficulties."""
    subjects = ["invoice", "refund", "login", "export", "API key", "webhook", "SSO", "report"]
    verbs = ["How do I", "Why can't I", "Explain how to", "Write a script to", "Summarize how to"]
    texts = [
        f"{v} {s.lower()} for account {n} (ticket {n * 7 % 1000})?"
        for n in range(25)
        for v in verbs
        for s in subjects
    ]
    assert len(set(texts)) == 1000
    predictor = default_predictor()
    diff, _ = predictor.predict_many(
        [extract(prompt_request(t)) for t in texts], profiles_for_names(CLAUDE)
    )
    assert len({float(d) for d in diff}) >= 950


@pytest.mark.parametrize("text", LIGHT)
def test_gateway_serves_light_prompts_on_tier_1(
    start_gateway: Callable[..., Running], upstream: FakeOpenAIServer, text: str
) -> None:
    gateway = start_gateway()
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}]
    )
    assert raw.headers["x-gearshift-model"] == "small", raw.headers["x-gearshift-predicted"]


@pytest.mark.parametrize("text", HEAVY, ids=["10-K", "insurance", "compensation", "vendor"])
def test_gateway_serves_heavy_prompts_on_tier_3(
    start_gateway: Callable[..., Running], upstream: FakeOpenAIServer, text: str
) -> None:
    gateway = start_gateway()
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}]
    )
    assert raw.headers["x-gearshift-model"] == "large", raw.headers["x-gearshift-predicted"]
