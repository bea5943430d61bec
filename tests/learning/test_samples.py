"""Judged samples: labels, learning spend rows, the cap, pauses on failure, retention — all while
clients get exactly the answers they would have got with learning off."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal

from tests.fakes.learning_world import BAD, GOOD, LearningWorld, world_config

from gearshift.learning.sampler import LEARNING_FEATURE
from gearshift.learning.store import Label, fetch_labels, insert_label

from .conftest import ENGLISH, GERMAN, Gw, store_for


def _learning_rows(url: str) -> list[tuple[str, Decimal, str]]:
    with store_for(url) as store:
        rows = store.execute_read(
            "SELECT r.id, r.cost_pusd, r.served_model FROM requests r JOIN request_tags t "
            "ON t.request_id = r.id WHERE t.key = 'feature' AND t.value = ?",
            (LEARNING_FEATURE,),
        )
    return [(str(i), Decimal(int(c)) / Decimal(10**12), str(m)) for i, c, m in rows]


def test_sampled_answers_become_labels_and_learning_spend_rows(
    start: Callable[..., Gw], ledger_url: str
) -> None:
    gw = start()
    answers = [gw.ask(p) for p in ENGLISH[:3] + GERMAN[:3]]
    answers += [gw.ask(ENGLISH[3], stream=True), gw.ask(GERMAN[3], stream=True)]
    # The client's answers are the light model's own, untouched by learning.
    assert [a[1] for a in answers] == ["light"] * 8
    assert [a[0] for a in answers] == [GOOD] * 3 + [BAD] * 3 + [GOOD, BAD]
    gw.drain()
    with store_for(ledger_url) as store:
        labels = {row["id"]: row for row in fetch_labels(store, router="auto")}
    assert set(labels) == {a[2] for a in answers}
    for (_, _, rid), prompt in zip(answers, ENGLISH[:3] + GERMAN[:3], strict=False):
        row = labels[rid]
        assert row["messages"] == [{"role": "user", "content": prompt}]
        light = 1 / 9 if prompt in GERMAN else 8 / 9
        assert row["scores"] == {"light": light, "strong": 8 / 9}
        assert row["costs"]["strong"] > row["costs"]["light"] > 0
    # 8 samples x (1 reference + 2 judge calls), each its own tagged ledger row, priced.
    spend = _learning_rows(ledger_url)
    assert len(spend) == 24
    assert sorted({m for _, _, m in spend}) == ["judge", "strong"]
    assert all(cost > 0 for _, cost, _ in spend)
    assert gw.sampler.counts["labelled"] == 8


def test_unparsable_judge_drops_the_sample_and_counts_it(
    start: Callable[..., Gw], world: LearningWorld, ledger_url: str
) -> None:
    world.judge_mode = "garbage"
    gw = start()
    assert [gw.ask(p)[0] for p in ENGLISH[:3]] == [GOOD] * 3
    gw.drain()
    with store_for(ledger_url) as store:
        assert fetch_labels(store) == []
    assert gw.sampler.counts["judge_unparsable"] == 3
    assert gw.sampler.counts["labelled"] == 0
    import httpx

    metrics = httpx.get(f"{gw.url}/metrics", timeout=10).text
    assert 'gearshift_learning_events_total{router="auto",event="judge_unparsable"} 3' in metrics
    assert 'gearshift_learning_events_total{router="auto",event="sampled"} 3' in metrics
    # The judge calls are spend, visible like any other (tagged feature=gearshift-learning).
    assert 'gearshift_tag_requests_total{tag="feature",value="gearshift-learning"} 6' in metrics


def test_failing_reference_pauses_sampling_and_clients_never_notice(
    start: Callable[..., Gw], world: LearningWorld, ledger_url: str
) -> None:
    world.reference_fails = True
    gw = start()
    assert [gw.ask(p)[0] for p in ENGLISH] == [GOOD] * len(ENGLISH)
    gw.drain()
    # One failed reference call pauses the router: the later requests are not sampled at all.
    assert world.calls["strong-1"] == 1
    assert gw.sampler.counts["failed_reference"] == 1
    assert gw.sampler._paused_until["auto"] > time.time() + 10
    assert world.calls["judge-1"] == 0


def test_failing_judge_pauses_sampling(
    start: Callable[..., Gw], world: LearningWorld, ledger_url: str
) -> None:
    world.judge_mode = "fail"
    gw = start()
    assert [gw.ask(p)[0] for p in ENGLISH[:4]] == [GOOD] * 4
    gw.drain()
    assert world.calls["judge-1"] == 1
    assert gw.sampler.counts["failed_judge"] == 1


def test_learning_spend_never_exceeds_the_daily_cap(
    start: Callable[..., Gw], world: LearningWorld, ledger_url: str
) -> None:
    cap = 0.01  # about seven samples: a strong-model call is ~$0.0012 at $15/$75 per Mtok
    gw = start(max_usd_per_day=cap, max_tokens=16)
    for prompt in (ENGLISH + GERMAN) * 3:
        gw.ask(prompt)
    gw.drain()
    spent = sum(cost for _, cost, _ in _learning_rows(ledger_url))
    assert 0 < spent <= Decimal(str(cap))
    assert gw.sampler.counts["paused_cap"] == 1
    assert gw.sampler.counts["labelled"] < len(ENGLISH + GERMAN) * 3


def test_daily_cap_counts_spend_already_in_the_ledger(
    start: Callable[..., Gw], world: LearningWorld, ledger_url: str
) -> None:
    """A restarted gateway (or another replica) reads today's learning spend from the ledger."""
    first = start(max_usd_per_day=0.01, max_tokens=16)
    for prompt in ENGLISH * 3:
        first.ask(prompt)
    first.drain()
    before = sum(cost for _, cost, _ in _learning_rows(ledger_url))
    second = start(max_usd_per_day=0.01, max_tokens=16)
    assert second.sampler.spent_today["auto"] == before
    for prompt in GERMAN * 3:
        second.ask(prompt)
    second.drain()
    assert sum(cost for _, cost, _ in _learning_rows(ledger_url)) <= Decimal("0.01")
    assert second.sampler.counts["paused_cap"] == 1


def test_labels_past_retention_are_deleted(
    start: Callable[..., Gw], world: LearningWorld, ledger_url: str
) -> None:
    gw = start(retention_days=1)
    gw.ask(ENGLISH[0])
    gw.drain()
    old = Label(
        id="old-1",
        ts=time.time() - 3 * 86400,
        router="auto",
        kind="chat",
        messages=[{"role": "user", "content": "an old prompt"}],
        scores={"light": 1.0, "strong": 1.0},
    )
    with store_for(ledger_url) as store:
        insert_label(store, old)
        assert {r["id"] for r in fetch_labels(store)} >= {"old-1"}
    gw2 = start(retention_days=1)  # the purge runs when a gateway starts, then hourly
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with store_for(ledger_url) as store:
            ids = {r["id"] for r in fetch_labels(store)}
        if "old-1" not in ids:
            break
        time.sleep(0.05)
    assert "old-1" not in ids and len(ids) == 1
    assert gw2.sampler.counts["dropped_error"] == 0


def test_learning_off_stores_no_prompt(
    start: Callable[..., Gw], world: LearningWorld, ledger_url: str
) -> None:
    config = world_config(world.base_url, ledger_url)
    del config["routers"][0]["learning"]
    gw = start(config)
    gw.ask(ENGLISH[0])
    assert gw.app.gateway.answer_observer is None
    writer = gw.app.gateway.ledger
    assert writer is not None
    writer.flush(10)  # type: ignore[attr-defined]
    with store_for(ledger_url) as store:
        assert fetch_labels(store) == []
        rows = store.execute_read_dicts("SELECT * FROM requests")
    assert len(rows) == 1
    assert ENGLISH[0] not in json.dumps(rows)
    assert world.calls["strong-1"] == 0 and world.calls["judge-1"] == 0
