"""Does the learning loop learn? A loopback world (tests/fakes/learning_world.py): a light model
that answers well except in German, a strong model, and a judge that grades their answers. The
bundled router does not know the light model fails in German, so at the start German help-desk
prompts go to the light model and lose quality.

Traffic flows through a real ``gearshift serve`` (learning on, sample_rate 1); after each stage's
number of judged samples (cumulative: 100, 300, 1000) the bench runs ``gearshift train
--from-ledger``, ``gearshift promote`` and measures routing on 200 fresh evaluation prompts
(never trained on: their labels are deleted): regret = mean(best quality for the prompt -
quality of the model served), cost = mean x-gearshift-cost-usd. Then an interleaved A/B of two
gateways (learning off / on at sample_rate 0.05) gives the request-path overhead of learning.

    .venv/bin/python bench/learning_loop.py [--stages 100,300,1000] [--eval 200]

Prints one JSON object per line; the last has samples, regret_before, regret_after,
cost_before, cost_after (for the largest sample count) and the overhead figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.fakes.learning_world import (  # noqa: E402
    LearningWorld,
    is_german,
    true_quality,
    world_config,
)

from processes import free_port, serve_command, wait_http  # noqa: E402

EN_ACTIONS = ["reset", "change", "update", "recover", "delete", "verify", "export", "renew"]
EN_THINGS = [
    "password",
    "email address",
    "invoice",
    "subscription",
    "profile photo",
    "billing address",
    "two-factor login",
    "order history",
    "gift card",
    "account name",
]
EN_TEMPLATES = [
    "How do I {a} my {t}?",
    "Can you help me {a} the {t} on my account?",
    "I tried to {a} my {t} but nothing happened. What should I do?",
    "Where in the app can I {a} my {t}?",
    "Is it possible to {a} my {t} from the mobile app?",
]
DE_ACTIONS = ["zurücksetzen", "ändern", "aktualisieren", "löschen", "exportieren", "verlängern"]
DE_THINGS = [
    "Passwort",
    "E-Mail-Adresse",
    "Rechnung",
    "Abonnement",
    "Profilbild",
    "Rechnungsadresse",
    "Bestellung",
    "Gutschein",
    "Konto",
]
DE_TEMPLATES = [
    "Wie kann ich mein {t} {a}, bitte?",
    "Ich kann mein {t} nicht {a}. Was ist das Problem?",
    "Warum kann ich die {t} nicht {a} und was soll ich tun?",
    "Ist es möglich, mein {t} mit der App zu {a}?",
    "Kann ich das {t} für mein Konto {a}?",
]


def prompts(rng: random.Random, n: int, german_share: float = 0.3) -> list[str]:
    out = []
    for _ in range(n):
        if rng.random() < german_share:
            tpl, a, t = rng.choice(DE_TEMPLATES), rng.choice(DE_ACTIONS), rng.choice(DE_THINGS)
        else:
            tpl, a, t = rng.choice(EN_TEMPLATES), rng.choice(EN_ACTIONS), rng.choice(EN_THINGS)
        suffix = rng.choice(["", " Thanks!", f" Order 4{rng.randint(100, 999)}."])
        out.append(tpl.format(a=a, t=t) + suffix)
    return out


def ask(client: httpx.Client, url: str, prompt: str) -> tuple[str, float, str, float]:
    started = time.perf_counter()
    r = client.post(
        f"{url}/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": prompt}]},
    )
    elapsed = (time.perf_counter() - started) * 1000
    r.raise_for_status()
    return (
        r.headers["x-gearshift-model"],
        float(r.headers["x-gearshift-cost-usd"]),
        r.headers["x-request-id"],
        elapsed,
    )


def label_count(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0])


def delete_labels(db: Path, ids: list[str]) -> None:
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.executemany("DELETE FROM labels WHERE id = ?", [(i,) for i in ids])


def wait_labels(db: Path, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while label_count(db) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)


def evaluate(client: httpx.Client, url: str, eval_prompts: list[str], db: Path) -> dict[str, Any]:
    served, costs, ids, regrets = [], [], [], []
    for prompt in eval_prompts:
        model, cost, rid, _ = ask(client, url, prompt)
        served.append(model)
        costs.append(cost)
        ids.append(rid)
        best = max(true_quality(m, prompt) for m in ("light", "strong"))
        regrets.append(best - true_quality(model, prompt))
    time.sleep(1.0)  # let the sampler store the evaluation prompts' labels, then drop them
    delete_labels(db, ids)
    german = [m for m, p in zip(served, eval_prompts, strict=True) if is_german(p)]
    return {
        "regret": round(statistics.fmean(regrets), 4),
        "cost_per_request_usd": round(statistics.fmean(costs), 7),
        "strong_share": round(served.count("strong") / len(served), 3),
        "strong_share_german": round(german.count("strong") / max(1, len(german)), 3),
    }


def promotion_visible_s(client: httpx.Client, url: str, db: Path, limit: float = 10.0) -> float:
    """Seconds from the end of ``gearshift promote`` until the gateway serves a German prompt on
    the strong model (the first promotion moves them; later ones keep them there)."""
    probe = "Wie kann ich mein Passwort ändern, bitte?"
    started = time.perf_counter()
    ids = []
    while time.perf_counter() - started < limit:
        model, _, rid, _ = ask(client, url, probe)
        ids.append(rid)
        if model == "strong":
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    time.sleep(1.0)
    delete_labels(db, ids)
    return round(elapsed, 3)


def gearshift(*argv: str) -> str:
    cmd = [sys.executable, "-m", "gearshift", *argv]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def start_gateway(
    config: dict[str, Any], workdir: Path, name: str
) -> tuple[subprocess.Popen[bytes], str, Path]:
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(serve_command(path, port), cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc)
    return proc, url, path


def overhead(world: LearningWorld, workdir: Path, rounds: int, per_round: int) -> dict[str, Any]:
    """Interleaved A/B: the same requests alternate between learning off and on (rate 0.05)."""
    off_cfg = world_config(world.base_url, f"sqlite:///{workdir}/off.db")
    del off_cfg["routers"][0]["learning"]
    on_cfg = world_config(world.base_url, f"sqlite:///{workdir}/on.db", sample_rate=0.05)
    off, off_url, _ = start_gateway(off_cfg, workdir, "off")
    on, on_url, _ = start_gateway(on_cfg, workdir, "on")
    rng = random.Random(7)
    times: dict[str, list[float]] = {"off": [], "on": []}
    try:
        with httpx.Client(timeout=30) as client:
            for url in (off_url, on_url):  # warm-up
                for p in prompts(rng, 50):
                    ask(client, url, p)
            for _ in range(rounds):
                batch = prompts(rng, per_round)
                for name, url in (("off", off_url), ("on", on_url)):
                    times[name] += [ask(client, url, p)[3] for p in batch]
    finally:
        for proc in (off, on):
            proc.terminate()
            proc.wait(30)
    p50 = {k: statistics.median(v) for k, v in times.items()}
    return {
        "latency_p50_ms_learning_off": round(p50["off"], 3),
        "latency_p50_ms_learning_on": round(p50["on"], 3),
        "overhead_p50_ms": round(p50["on"] - p50["off"], 3),
        "requests_each": len(times["off"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", default="100,300,1000")
    parser.add_argument("--eval", type=int, default=200)
    parser.add_argument("--ab-rounds", type=int, default=6)
    parser.add_argument("--ab-per-round", type=int, default=300)
    args = parser.parse_args()
    stages = [int(s) for s in args.stages.split(",")]
    rng = random.Random(0)
    eval_prompts = prompts(random.Random(12345), args.eval)
    with tempfile.TemporaryDirectory() as tmp, LearningWorld() as world:
        workdir = Path(tmp)
        db = workdir / "ledger.db"
        # The default daily cap ($1) would pause sampling after ~400 samples at $15/$75 per Mtok.
        config = world_config(world.base_url, f"sqlite:///{db}", max_usd_per_day=100)
        proc, url, cfg_path = start_gateway(config, workdir, "gearshift")
        results: list[dict[str, Any]] = []
        try:
            with httpx.Client(timeout=30) as client:
                before = evaluate(client, url, eval_prompts, db)
                print(json.dumps({"stage": "before", **before}), flush=True)
                for target in stages:
                    while label_count(db) < target:
                        for p in prompts(rng, max(10, (target - label_count(db)) // 2)):
                            ask(client, url, p)
                        wait_labels(db, target, timeout=5)
                    samples = label_count(db)
                    out = workdir / f"candidate-{target}"
                    gearshift(
                        "train",
                        "--from-ledger",
                        "--config",
                        str(cfg_path),
                        "--out",
                        str(out),
                        "--holdout-days",
                        "0",
                    )
                    gearshift("promote", str(out), "--config", str(cfg_path), "--holdout-days", "0")
                    visible = promotion_visible_s(client, url, db)
                    after = evaluate(client, url, eval_prompts, db)
                    row = {"stage": target, "samples": samples, "promotion_visible_s": visible}
                    row.update(after)
                    results.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
        ab = overhead(world, workdir, args.ab_rounds, args.ab_per_round)
        print(json.dumps({"stage": "overhead", **ab}), flush=True)
    last = results[-1]
    print(
        json.dumps(
            {
                "samples": last["samples"],
                "regret_before": before["regret"],
                "regret_after": last["regret"],
                "cost_before": before["cost_per_request_usd"],
                "cost_after": last["cost_per_request_usd"],
                "strong_share_german_before": before["strong_share_german"],
                "strong_share_german_after": last["strong_share_german"],
                "promotion_visible_s_max": max(r["promotion_visible_s"] for r in results),
                "stages": results,
                **ab,
            }
        )
    )


if __name__ == "__main__":
    main()
