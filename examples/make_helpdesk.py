"""Write examples/helpdesk.jsonl: a week of a SaaS help assistant's traffic, all sent to gpt-4o.

The product is "Ledgerly", an invented invoicing and subscription-billing SaaS. The assistant
answers customers and internal support staff: password resets and FAQs next to billing disputes,
ticket triage, multi-turn troubleshooting, log analysis, SQL help, contract summaries and policy
drafting. Every line is one OpenAI-style record, the shape a logging proxy writes::

    {"id", "timestamp", "metadata": {"feature", "team", ...}, "user",
     "request": {chat completions body}, "response": {chat.completion with usage}}

Deterministic: the same seed gives the same file byte for byte. Usage counts are estimated from
the text (about four characters per token, plus per-message overhead), as a tokenizer would
roughly count.

    python examples/make_helpdesk.py                      # examples/helpdesk.jsonl, 3,000 requests
    python examples/make_helpdesk.py --requests 1000000 --seed 7 --out /tmp/big.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

MODEL = "gpt-4o"
SERVED_MODEL = "gpt-4o-2024-08-06"
START = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)  # a Monday

SYSTEM_CUSTOMER = (
    "You are Ledgerly's support assistant. Ledgerly is an invoicing and subscription-billing "
    "platform "
    "for small businesses. Answer customers politely and concisely, link to help-centre "
    "articles when "
    "useful, never invent account data, and escalate to a human when a refund above $500 or a "
    "legal "
    "question is involved."
)
SYSTEM_AGENT = (
    "You are an internal assistant for Ledgerly's support and success teams. Be precise, cite the "
    "evidence you rely on, and say when information is missing."
)

FIRST = [
    "Ana",
    "Ben",
    "Chloé",
    "Dmitri",
    "Elif",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
    "Olu",
    "Priya",
]
LAST = [
    "Okafor",
    "Schmidt",
    "Tanaka",
    "Rossi",
    "Novak",
    "Haddad",
    "Larsen",
    "Costa",
    "Mensah",
    "Ivanova",
    "Dubois",
    "Kim",
    "Patel",
]
COMPANIES = [
    "Brightside Bakery",
    "Northwind Traders",
    "Pixel & Pine Studio",
    "Harbor Dental Care",
    "Kestrel Logistics",
    "Moss Lane Yoga",
    "Quantum Bikes",
    "Tidewater Consulting",
    "Copperleaf Books",
    "Atlas Roofing",
    "Bluebird Tutoring",
    "Greenfield Farms Co-op",
]
PLANS = ["Starter", "Growth", "Pro", "Enterprise"]
PLAN_PRICE = {"Starter": 19, "Growth": 49, "Pro": 129, "Enterprise": 499}
CURRENCIES = ["USD", "EUR", "GBP", "CAD", "AUD"]
INTEGRATIONS = [
    "Stripe",
    "QuickBooks",
    "Xero",
    "Shopify",
    "HubSpot",
    "Zapier",
    "Slack",
    "Salesforce",
]
BROWSERS = [
    "Chrome 122",
    "Safari 17.3",
    "Firefox 123",
    "Edge 121",
    "the iOS app",
    "the Android app",
]


def _name(r: random.Random) -> str:
    return f"{r.choice(FIRST)} {r.choice(LAST)}"


def _invoice(r: random.Random) -> str:
    return f"INV-{r.randint(2023, 2025)}-{r.randint(1000, 99999):05d}"


def _money(r: random.Random, lo: float, hi: float) -> str:
    return f"{r.uniform(lo, hi):,.2f}"


def _tokens(text: str) -> int:
    return max(1, round(len(text) / 4))


# ---- prompt families: each returns (feature, team, messages, answer) ----------------------------

Convo = tuple[str, str, list[dict[str, str]], str]


def password_reset(r: random.Random) -> Convo:
    asks = [
        "I forgot my password, how do I reset it?",
        "hi, can't log in. password reset email never arrives",
        "How do I change my password?",
        "my account got locked after too many attempts. help?",
        "Reset link says expired. What now?",
        "I don't get the 2FA code anymore, I changed phones",
        "how to reset password on {b}",
        "Password reset email went to my old address {e}, can I change it?",
        "Is there a way to log in with Google instead of a password?",
        "Hello, I am {n} from {c}. I cannot sign in since this morning.",
    ]
    ask = r.choice(asks).format(
        b=r.choice(BROWSERS),
        e=f"{r.choice(FIRST).lower()}@{r.choice(['gmail.com', 'outlook.com', 'yahoo.com'])}",
        n=_name(r),
        c=r.choice(COMPANIES),
    )
    answer = r.choice(
        [
            "You can reset your password from the sign-in page: click **Forgot password?**, "
            "enter the "
            "email on your account and follow the link we send (it is valid for 30 minutes). "
            "If the email "
            "does not arrive within 5 minutes, check your spam folder and make sure no filter "
            "blocks "
            "no-reply@ledgerly.example.",
            "Sorry about the trouble! Accounts lock for 15 minutes after 5 failed attempts. "
            "After that, "
            "use **Forgot password?** on the sign-in page. If you changed phones and lost "
            "your 2FA app, "
            "use one of your backup codes, or ask your workspace owner to reset 2FA under "
            "Settings → Team.",
            "Reset links expire after 30 minutes for security. Request a new one from the "
            "sign-in page "
            "and open it on the same device. Only the most recent link works.",
        ]
    )
    return "account", "support", [{"role": "user", "content": ask}], answer


FAQ_TOPICS = [
    ("export my invoices to CSV", "Go to Invoices, filter the period you need, then Export → CSV."),
    ("change the currency on an invoice", "Open the draft invoice, then Settings → Currency."),
    ("add a teammate to my workspace", "Settings → Team → Invite; choose their role."),
    ("set up automatic payment reminders", "Settings → Reminders; pick the schedule."),
    ("add my logo to invoices", "Settings → Branding → Upload logo (PNG or SVG, max 2 MB)."),
    ("change my time zone", "Profile → Preferences → Time zone."),
    ("connect {i}", "Settings → Integrations → {i} → Connect, then authorise Ledgerly."),
    ("create a recurring invoice", "New invoice → Make recurring; choose interval and end date."),
    ("accept payments by bank transfer", "Settings → Payments → enable bank transfer."),
    ("delete a customer", "Customers → select → Archive; deletion is permanent after 30 days."),
    ("find the API rate limit", "The API allows 100 requests per minute per workspace."),
    ("download a receipt for my subscription", "Billing → History → Download PDF."),
    ("turn on two-factor authentication", "Profile → Security → Two-factor authentication."),
    ("add tax to an invoice line", "Click the line, then Tax → choose or create a tax rate."),
    ("send an invoice in {cur}", "Set the customer's default currency to {cur}."),
]
FAQ_FORMS = [
    "How do I {t}?",
    "how can i {t}",
    "Quick question: is it possible to {t}?",
    "Where do I go to {t}? I looked everywhere.",
    "Can you explain how to {t} on {b}?",
    "We are on the {p} plan. Can we {t}?",
    "Hi! {t}?? thanks",
]


def faq(r: random.Random) -> Convo:
    topic, hint = r.choice(FAQ_TOPICS)
    fill = {"i": r.choice(INTEGRATIONS), "cur": r.choice(CURRENCIES)}
    ask = r.choice(FAQ_FORMS).format(
        t=topic.format(**fill), b=r.choice(BROWSERS), p=r.choice(PLANS)
    )
    answer = (
        f"Sure! {hint.format(**fill)} The change applies immediately to new invoices; "
        "existing ones "
        "keep their settings. Our help centre has a step-by-step guide with screenshots if "
        "you need "
        "it. Anything else I can help with?"
    )
    return "faq", "support", [{"role": "user", "content": ask}], answer


def billing(r: random.Random) -> Convo:
    plan, new = r.sample(PLANS, 2)
    day = r.randint(2, 27)
    amount = _money(r, 12, 1800)
    asks = [
        f"Why was I charged ${amount} on invoice {_invoice(r)}? I'm on the {plan} plan.",
        f"I upgraded from {plan} to {new} on the {day}th. How is the proration calculated? Our "
        "billing date is the 1st and the month has 31 days.",
        f"Can I get a refund for last month? We didn't use Ledgerly at all. Amount ${amount}.",
        f"Our card was declined and now the account says past due. We're {r.choice(COMPANIES)}.",
        f"Do you offer annual billing for {plan}? What's the discount?",
        f"We were charged twice this month ({_invoice(r)} and {_invoice(r)}). Please fix.",
        "How do I change the billing email and VAT number on our subscription?",
        f"Is VAT included in the ${PLAN_PRICE[plan]} price for customers in the EU?",
    ]
    ask = r.choice(asks)
    answer = r.choice(
        [
            f"Plan changes are prorated by day. Going from {plan} (${PLAN_PRICE[plan]}/mo) to "
            f"{new} "
            f"(${PLAN_PRICE[new]}/mo) on day {day} of a 31-day month, you are credited "
            f"{32 - day}/31 of the old price and charged {32 - day}/31 of the new one on the next "
            "invoice. You can see the line items under Billing → Upcoming invoice.",
            "I'm sorry about that! I can see why this is confusing. A duplicate charge is "
            "usually a "
            "pending authorisation that drops off within 3–5 business days. If both charges "
            "settle, "
            "reply here and a billing specialist will refund the duplicate.",
            "Annual billing is available on every plan and saves two months (about 16%). "
            "Switch under "
            "Billing → Plan → Pay yearly; the unused part of this month is credited.",
        ]
    )
    return "billing", "billing", [{"role": "user", "content": ask}], answer


TICKET_BODIES = [
    "The export button does nothing in {b}. Tried twice.",
    "We need to cancel, the price increase is too much for us.",
    "Your {i} sync created 40 duplicate customers overnight!!!",
    "Can you add Portuguese as an invoice language?",
    "Invoice {inv} shows the wrong tax amount, customer is upset.",
    "Great product, just wanted to say thanks to {n} for the help yesterday.",
    "Webhook deliveries to our endpoint fail with 401 since the update.",
    "How do I give my accountant read-only access?",
]


def triage(r: random.Random) -> Convo:
    body = r.choice(TICKET_BODIES).format(
        b=r.choice(BROWSERS), i=r.choice(INTEGRATIONS), inv=_invoice(r), n=_name(r)
    )
    ask = (
        "Classify this support ticket. Reply with JSON only: "
        '{"category": one of [bug, billing, feature_request, how_to, churn_risk, praise], '
        '"priority": one of [low, normal, high, urgent], "summary": string under 15 words}.\n\n'
        f"Ticket #{r.randint(10000, 99999)} from {_name(r)} ({r.choice(PLANS)} plan):\n{body}"
    )
    category = r.choice(["bug", "billing", "feature_request", "how_to", "churn_risk"])
    answer = json.dumps(
        {
            "category": category,
            "priority": r.choice(["low", "normal", "high"]),
            "summary": body[:60],
        }
    )
    return (
        "triage",
        "support-ops",
        [{"role": "system", "content": SYSTEM_AGENT}, {"role": "user", "content": ask}],
        answer,
    )


def reply_draft(r: random.Random) -> Convo:
    tone = r.choice(["friendly", "formal", "apologetic but firm", "short and warm"])
    draft = r.choice(
        [
            "we cant refund because its past 30 days but we can give credit",
            "the bug is fixed in the release tomorrow, sorry for the trouble",
            "you need to reconnect quickbooks, the token expired, see the guide",
            "your plan doesnt include multi currency, upgrade to pro to get it",
        ]
    )
    ask = f"Rewrite this reply to a customer named {_name(r)} in a {tone} tone:\n\n{draft}"
    answer = (
        f"Hi {r.choice(FIRST)},\n\nThank you for reaching out, and I'm sorry for the "
        "inconvenience. "
        f"{draft.capitalize()}. Please let me know if there is anything else I can do for you.\n\n"
        "Best regards,\nThe Ledgerly team"
    )
    return "reply-drafting", "support", [{"role": "user", "content": ask}], answer


ERRORS = [
    ("Webhook signature verification failed", "the signing secret rotated"),
    ("ERR_PAYMENT_INTENT_MISMATCH", "an amount edited after the payment intent was created"),
    ("QuickBooks sync: 429 Too Many Requests", "too many parallel syncs"),
    ("PDF rendering timed out after 30000 ms", "a 40 MB logo image"),
    ("SAML assertion audience mismatch", "the entity ID set to the old domain"),
]


def troubleshooting(r: random.Random) -> Convo:
    err, cause = r.choice(ERRORS)
    turns = r.randint(1, 3)
    msgs: list[dict[str, str]] = [{"role": "system", "content": SYSTEM_CUSTOMER}]
    msgs.append(
        {
            "role": "user",
            "content": "Since "
            f"{r.choice(['yesterday', 'Monday', 'the last update', 'this morning'])} "
            f"we get '{err}' when "
            f"{r.choice(['sending invoices', 'syncing', 'logging in', 'exporting'])}. "
            f"We use {r.choice(INTEGRATIONS)} and {r.choice(BROWSERS)}. Nothing changed on "
            "our side.",
        }
    )
    followups = [
        "I tried that, same error. What else can I check?",
        "OK the secret matches. The error shows only for invoices over $10,000, is that related?",
        "Here is the request id from the dashboard: req_"
        + "".join(r.choices("abcdef0123456789", k=16)),
        "Our IT team says the firewall allows your IP ranges. Could it be a timezone issue?",
    ]
    for i in range(turns):
        msgs.append(
            {
                "role": "assistant",
                "content": f"Let's narrow it down. Step {i + 1}: "
                f"please check whether {cause} could "
                "apply, and tell me exactly when the first failure happened.",
            }
        )
        msgs.append({"role": "user", "content": r.choice(followups)})
    answer = (
        f"Thanks, that narrows it down. The pattern you describe is consistent with {cause}. "
        "1) Open Settings → Developers and compare the current value with the one in your system. "
        "2) Re-send one failed item from the Events tab. 3) If it still fails, reply with the new "
        "request id and I'll escalate to our engineers with everything gathered so far."
    )
    return "troubleshooting", "support", msgs, answer


def log_analysis(r: random.Random) -> Convo:
    t = datetime(2025, 3, r.randint(1, 9), r.randint(0, 23), r.randint(0, 59), tzinfo=UTC)
    lines = []
    for _ in range(r.randint(20, 70)):
        t += timedelta(milliseconds=r.randint(5, 4000))
        level = r.choices(["INFO", "WARN", "ERROR", "DEBUG"], [6, 2, 1, 2])[0]
        svc = r.choice(["api", "billing-worker", "sync-qb", "pdf-render", "webhooks"])
        msg = r.choice(
            [
                f"POST /v1/invoices 201 {r.randint(30, 900)}ms",
                f"GET /v1/customers?page={r.randint(1, 40)} 200 {r.randint(10, 300)}ms",
                f"retrying job {r.randint(1000, 9999)} attempt={r.randint(1, 5)}",
                f"db pool exhausted: waited {r.randint(100, 5000)}ms for connection",
                f"upstream {r.choice(INTEGRATIONS)} responded 503",
                f"webhook delivery to https://hooks.customer{r.randint(1, 500)}.example "
                "failed: timeout",
                f"rendered invoice {_invoice(r)} in {r.randint(200, 31000)}ms",
                "GC pause 412ms",
            ]
        )
        lines.append(f"{t.isoformat(timespec='milliseconds')} {level:5} [{svc}] {msg}")
    ask = (
        "Here are logs from the incident window. What is the most likely root cause, what evidence "
        "supports it, and what should we do first?\n\n```\n" + "\n".join(lines) + "\n```"
    )
    answer = (
        "**Most likely root cause:** database connection-pool exhaustion in `billing-worker`, "
        "which "
        "makes API calls slow and lets webhook deliveries time out.\n\n**Evidence:**\n"
        "- repeated `db pool exhausted` warnings preceding each burst of timeouts;\n"
        "- retries of the same jobs multiplying the load;\n- upstream 503s appear after, not "
        "before.\n\n"
        "**First steps:** cap job concurrency, raise the pool size temporarily, and add backoff "
        "with jitter to retries. Then check for long-running transactions holding connections."
    )
    return (
        "log-analysis",
        "sre",
        [{"role": "system", "content": SYSTEM_AGENT}, {"role": "user", "content": ask}],
        answer,
    )


SCHEMA = """Tables:
invoices(id, customer_id, issued_at, due_at, status, currency, total_cents)
payments(id, invoice_id, paid_at, amount_cents, method)
customers(id, name, country, plan, created_at)
subscriptions(id, customer_id, plan, started_at, cancelled_at, mrr_cents)"""
SQL_ASKS = [
    "monthly recurring revenue by plan for the last 12 months",
    "customers with more than {k} overdue invoices",
    "average days to pay per country, only countries with at least {k} invoices",
    "churned customers in {y} and the MRR we lost each month",
    "invoices paid partially, with the remaining balance",
    "the top {k} customers by lifetime payments in {cur}",
]


def sql_help(r: random.Random) -> Convo:
    ask_text = r.choice(SQL_ASKS).format(
        k=r.randint(2, 20), y=r.choice([2023, 2024]), cur=r.choice(CURRENCIES)
    )
    dialect = r.choice(["PostgreSQL", "BigQuery", "Snowflake", "MySQL 8"])
    ask = f"{SCHEMA}\n\nWrite a {dialect} query for: {ask_text}. Explain any tricky joins."
    answer = (
        "```sql\nSELECT c.plan, date_trunc('month', p.paid_at) AS month,\n"
        "       SUM(p.amount_cents) / 100.0 AS revenue\nFROM payments p\n"
        "JOIN invoices i ON i.id = p.invoice_id\nJOIN customers c ON c.id = i.customer_id\n"
        "WHERE p.paid_at >= now() - interval '12 months'\nGROUP BY 1, 2\nORDER BY 2, 1;\n```\n"
        "The join goes through `invoices` because payments reference invoices, not customers. "
        "Partial payments are summed per invoice, so an invoice paid in two parts counts once."
    )
    return "sql-help", "analytics", [{"role": "user", "content": ask}], answer


CLAUSES = [
    "The Provider shall make the Service available 99.{n}% of each calendar month, excluding "
    "scheduled maintenance announced at least 72 hours in advance.",
    "Fees are payable within {d} days of invoice. Late amounts bear interest at {p}% per "
    "month or the "
    "maximum permitted by law, whichever is lower.",
    "Either party may terminate this Agreement for convenience on {d} days' written notice; "
    "prepaid "
    "fees for the remainder of the term are non-refundable except as stated in Section 9.",
    "The Customer grants the Provider a limited licence to process Customer Data solely to provide "
    "the Service, in accordance with the Data Processing Addendum in Schedule {s}.",
    "Neither party's aggregate liability shall exceed the fees paid in the {d} months "
    "preceding the "
    "claim, except for breaches of confidentiality or indemnification obligations.",
    "The Provider shall notify the Customer of a Security Incident without undue delay and in any "
    "event within {h} hours of becoming aware of it.",
    "This Agreement renews automatically for successive {d}-month terms unless either party gives "
    "notice of non-renewal at least 60 days before the end of the then-current term.",
    "Each party shall keep the other's Confidential Information secret for {y} years after "
    "termination and use it only to perform this Agreement.",
    "The Provider may increase fees once per year by no more than {p}% on 90 days' notice.",
    "Disputes shall be resolved by binding arbitration seated in {city} under the rules of the "
    "{inst}, in the English language.",
]


def contract_summary(r: random.Random) -> Convo:
    a, b = r.sample(COMPANIES, 2)
    clauses = []
    for i in range(r.randint(20, 64)):
        clause = r.choice(CLAUSES).format(
            n=r.randint(0, 9),
            d=r.choice([15, 30, 45, 60, 90]),
            p=r.choice([1, 1.5, 3, 5, 7]),
            s=r.choice("ABCD"),
            h=r.choice([24, 48, 72]),
            y=r.randint(2, 7),
            city=r.choice(["London", "New York", "Singapore", "Geneva"]),
            inst=r.choice(["ICC", "LCIA", "AAA", "SIAC"]),
        )
        clauses.append(f"{i + 1}. {clause}")
    ask = (
        f"Summarise this master services agreement between {a} (Customer) and Ledgerly (Provider) "
        f"for {_name(r)} in our legal team. List: term and renewal, fees and payment, "
        "liability cap, "
        "termination rights, data protection, and anything unusual versus our standard terms. "
        f"Flag risks.\n\nAGREEMENT (reference {b[:3].upper()}-{r.randint(100, 999)})\n\n"
        + "\n".join(clauses)
    )
    answer = (
        "**Term and renewal:** automatic renewal with 60 days' notice of non-renewal.\n"
        "**Fees:** payable within the stated period; late interest capped by law.\n"
        "**Liability:** capped at fees paid in the look-back period, with carve-outs for "
        "confidentiality and indemnities.\n**Termination:** for convenience on notice; "
        "prepaid fees "
        "non-refundable.\n**Data protection:** processing limited to providing the Service "
        "under the "
        "DPA.\n**Unusual / risks:** the security-incident notice window and the arbitration seat "
        "differ from our standard terms; the annual fee increase clause should be checked against "
        "the customer's procurement policy."
    )
    return (
        "contracts",
        "legal",
        [{"role": "system", "content": SYSTEM_AGENT}, {"role": "user", "content": ask}],
        answer,
    )


def policy_drafting(r: random.Random) -> Convo:
    topic = r.choice(
        [
            "data retention for customer invoices and payment records",
            "acceptable use of generative AI tools by support staff",
            "refund and credit approvals above $500",
            "handling law-enforcement requests for customer data",
            "on-call escalation for payment outages",
        ]
    )
    regions = ", ".join(
        r.sample(["the EU (GDPR)", "the UK", "California (CCPA)", "Canada", "Australia"], 2)
    )
    ask = (
        f"Draft an internal policy on {topic}. It must work for customers in {regions}, name "
        "an owner "
        f"and review cadence, define terms, and include a short FAQ for staff. Keep it under "
        f"{r.choice([600, 800, 1200])} words and use headings."
    )
    body = " ".join(
        f"Section {i}: requirements, responsibilities and exceptions for {topic}."
        for i in range(1, 40)
    )
    answer = (
        f"# Policy: {topic.capitalize()}\n\n## Purpose\n{body}\n\n"
        "## FAQ\nQ: Who owns this? A: Legal."
    )
    return "policy-drafting", "legal", [{"role": "user", "content": ask}], answer


FAMILIES: list[tuple[Callable[[random.Random], Convo], float]] = [
    (password_reset, 18),
    (faq, 22),
    (billing, 15),
    (triage, 8),
    (reply_draft, 8),
    (troubleshooting, 10),
    (log_analysis, 6),
    (sql_help, 6),
    (contract_summary, 4),
    (policy_drafting, 3),
]


def _timestamp(r: random.Random, i: int, n: int) -> datetime:
    # Spread over seven days, busier in (European and American) office hours.
    day = (i * 7) // max(n, 1)
    hour = r.choices(
        range(24), [1, 1, 1, 1, 1, 2, 4, 6, 9, 10, 10, 9, 8, 9, 10, 10, 9, 7, 5, 4, 3, 2, 1, 1]
    )[0]
    return START + timedelta(days=day, hours=hour, seconds=r.randint(0, 3599))


def records(n: int, seed: int) -> Iterator[dict[str, object]]:
    r = random.Random(seed)
    funcs = [f for f, _ in FAMILIES]
    weights = [w for _, w in FAMILIES]
    for i in range(n):
        feature, team, messages, answer = r.choices(funcs, weights)[0](r)
        if messages[0]["role"] != "system" and r.random() < 0.7:
            messages = [{"role": "system", "content": SYSTEM_CUSTOMER}, *messages]
        prompt_tokens = sum(_tokens(m["content"]) + 4 for m in messages) + 3
        completion_tokens = _tokens(answer)
        ts = _timestamp(r, i, n)
        rid = f"chatcmpl-{seed:x}{i:08x}"
        yield {
            "id": rid,
            "timestamp": ts.isoformat().replace("+00:00", "Z"),
            "metadata": {"feature": feature, "team": team, "env": "prod"},
            "user": f"user-{r.randint(1, 900):04d}",
            "request": {
                "model": MODEL,
                "messages": messages,
                "temperature": r.choice([0, 0.2, 0.3, 0.7]),
            },
            "response": {
                "id": rid,
                "object": "chat.completion",
                "created": int(ts.timestamp()),
                "model": SERVED_MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--out", default=str(Path(__file__).with_name("helpdesk.jsonl")))
    args = parser.parse_args(argv)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for rec in records(args.requests, args.seed):
            out.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
