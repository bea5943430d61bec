"""The routing commands end to end through the real CLI entry point, on crafted fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gearshift.cli.main import main
from gearshift.routing.metrics import apgr, pair_curve


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_train_writes_router_and_honest_report(trained_router: Path) -> None:
    assert (trained_router / "router.npz").is_file()
    report = json.loads((trained_router / "report.json").read_text())
    assert report["models"] == ["small", "medium", "large"]
    assert report["strong"] == "large" and report["weak"] == "small"
    cv = report["cross_validation"]
    assert set(cv["per_model"]) == {"small", "medium", "large"}
    # the crafted set is learnable: out-of-fold routing beats random by far
    assert cv["pair"]["apgr"] > 0.65  # random is 0.5; a perfect split of this set ~0.74


def test_train_score_round_trip(trained_router: Path, held_out_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.jsonl"
    code = main(
        [
            "score",
            "--input",
            str(held_out_file),
            "--output",
            str(out),
            "--router",
            str(trained_router),
            "--quiet",
        ]
    )
    assert code == 0
    preds = _read_jsonl(out)
    rows = _read_jsonl(held_out_file)
    assert [p["id"] for p in preds] == [r["id"] for r in rows]
    for p in preds:
        assert 0.0 <= p["difficulty"] <= 1.0
        assert set(p["predicted"]) == {"small", "medium", "large"}
        assert all(0.0 <= q <= 1.0 for q in p["predicted"].values())
    # held-out prompts: hard ones get higher difficulty, and APGR beats random
    weak = [r["scores"]["small"] for r in rows]
    strong = [r["scores"]["large"] for r in rows]
    assert apgr(pair_curve([p["difficulty"] for p in preds], weak, strong)) > 0.65
    hard = [p["difficulty"] for p, r in zip(preds, rows, strict=True) if r["scores"]["small"] == 0]
    easy = [p["difficulty"] for p, r in zip(preds, rows, strict=True) if r["scores"]["small"] == 1]
    assert sum(hard) / len(hard) > sum(easy) / len(easy)


def test_score_default_router_with_models(held_out_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.jsonl"
    assert (
        main(
            [
                "score",
                "--input",
                str(held_out_file),
                "--output",
                str(out),
                "--models",
                "gpt-4o-mini,gpt-4o",
                "--quiet",
            ]
        )
        == 0
    )
    preds = _read_jsonl(out)
    assert len(preds) == 200
    for p in preds:
        assert set(p["predicted"]) == {"gpt-4o-mini", "gpt-4o"}
        assert p["predicted"]["gpt-4o"] >= p["predicted"]["gpt-4o-mini"]
    # without --models the default router predicts for the models each row scores
    assert main(["score", "--input", str(held_out_file), "--output", str(out), "--quiet"]) == 0
    assert set(_read_jsonl(out)[0]["predicted"]) == {"small", "medium", "large"}


def test_score_accepts_bare_prompts(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "prompt": "hello"}\n{"prompt": "2+2?"}\n')
    out = tmp_path / "out.jsonl"
    assert main(["score", "--input", str(src), "--output", str(out), "--quiet"]) == 0
    preds = _read_jsonl(out)
    assert [p["id"] for p in preds] == ["a", 2]  # no id: the line number


def test_score_bad_input_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "prompt": "hello"}\n{"id": "b", "prompt": \n')
    out = tmp_path / "out.jsonl"
    assert main(["score", "--input", str(src), "--output", str(out)]) == 1
    assert "line 2: not valid JSON" in capsys.readouterr().err
    src.write_text("")
    assert main(["score", "--input", str(src), "--output", str(out)]) == 1
    assert "empty" in capsys.readouterr().err
    src.write_text('{"id": "a", "messages": []}\n')
    assert main(["score", "--input", str(src), "--output", str(out)]) == 1
    assert "line 1" in capsys.readouterr().err


def test_score_unknown_model_for_trained_router(
    trained_router: Path, held_out_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.jsonl"
    code = main(
        [
            "score",
            "--input",
            str(held_out_file),
            "--output",
            str(out),
            "--router",
            str(trained_router),
            "--models",
            "small,gpt-9",
        ]
    )
    assert code == 1
    assert "has no predictions for gpt-9" in capsys.readouterr().err


def test_eval_reports_and_plots(
    trained_router: Path, held_out_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "curve.png"
    code = main(
        [
            "eval",
            "--data",
            str(held_out_file),
            "--router",
            str(trained_router),
            "--plot",
            str(plot),
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pair"]["weak"] == "small" and report["pair"]["strong"] == "large"
    assert report["pair"]["apgr"] > 0.65
    assert 0 <= report["pair"]["cpt50"] <= report["pair"]["cpt80"] <= 1
    n = report["n_models"]
    assert n["best_single_model"] == "large"
    assert n["cost_share_at_target"] is not None and n["cost_share_at_target"] < 0.8
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_train_share_and_text(labelled_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--data", str(labelled_file), "--train-share", "0.3"]) == 0
    text = capsys.readouterr().out
    assert "APGR" in text and "CPT(50%)" in text and "router reaches 95%" in text


def test_eval_bad_input(
    labelled_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "--data", str(labelled_file), "--weak", "nope"]) == 1
    assert "not among the evaluated models" in capsys.readouterr().err
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    assert main(["train", "--data", str(empty), "--out", str(tmp_path / "r")]) == 1
    assert "empty" in capsys.readouterr().err
    one_model = tmp_path / "one.jsonl"
    one_model.write_text(
        "".join(
            json.dumps({"id": i, "prompt": f"p{i}", "scores": {"m": 1}}) + "\n" for i in range(30)
        )
    )
    assert main(["train", "--data", str(one_model), "--out", str(tmp_path / "r")]) == 1
    assert "at least two models" in capsys.readouterr().err


def test_route_explains(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["route", "What is the capital of France?"]) == 0
    out = capsys.readouterr().out
    assert "CHOSEN" in out and "gpt-4o-mini" in out and "difficulty" in out
    assert (
        main(
            [
                "route",
                "hello",
                "--models",
                "claude-3-haiku,claude-3-opus",
                "--json",
                "--tolerance",
                "0",
            ]
        )
        == 0
    )
    decision = json.loads(capsys.readouterr().out)
    assert decision["chosen"] == "claude-3-opus"
    config = tmp_path / "gearshift.yaml"
    config.write_text(
        "models:\n"
        "  - {name: small, tier: 1, price: {input_per_mtok: 0.25, output_per_mtok: 1.25}}\n"
        "  - {name: large, tier: 3, price: {input_per_mtok: 15, output_per_mtok: 75}}\n"
        "routers:\n  - {name: auto, models: [small, large], quality_tolerance: 1.0}\n"
    )
    assert main(["route", "hi", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "router      auto" in out and "small" in out
    assert main(["route", "hi", "--config", str(config), "--router", "nope"]) == 1
    assert "no router named 'nope'" in capsys.readouterr().err


def test_route_says_where_qualities_and_costs_come_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["route", "hi", "--models", "gpt-4-1106-preview,gpt-4o-mini,mystery-model"]
    assert main([*argv, "--json"]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["predictor"] == "default"
    sources = decision["quality_sources"]
    assert sources["gpt-4-1106-preview"] == "trained (gpt-4-1106-preview)"
    assert sources["gpt-4o-mini"].startswith("profile (catalogue ability 0.")
    assert sources["mystery-model"].startswith("profile (")
    # no price is an unknown cost, not a free model: it ranks as the dearest
    assert decision["est_cost_usd"]["mystery-model"] is None
    assert decision["est_cost_usd"]["gpt-4o-mini"] > 0
    assert decision["chosen"] == "gpt-4o-mini" and decision["ranked"][-1] == "mystery-model"
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "router      demo (predictor: default)" in out
    (row,) = [line for line in out.splitlines() if line.startswith("  mystery-model ")]
    assert row.split()[2] == "unknown" and "$0.000000" not in out
    assert "mystery-model: no known price, so ranked as the most expensive" in out


def test_route_names_the_heuristic_when_the_bundled_model_is_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gearshift.routing import predictors

    monkeypatch.setattr(predictors, "DEFAULT_MODEL_FILE", "no_such_router.npz")
    predictors.default_predictor.cache_clear()
    try:
        assert main(["route", "hi"]) == 0
        out = capsys.readouterr().out
        assert main(["route", "hi", "--json"]) == 0
        decision = json.loads(capsys.readouterr().out)
    finally:
        predictors.default_predictor.cache_clear()  # the real bundled model for later tests
    heuristic = "default (heuristic: bundled model missing)"
    assert f"router      demo (predictor: {heuristic})" in out
    assert decision["predictor"] == heuristic
    assert set(decision["quality_sources"]) == {"gpt-4o-mini", "gpt-4o"}
    assert all(
        s.startswith("profile (catalogue ability") for s in decision["quality_sources"].values()
    )


def test_convert_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "data"
    (src / "mmlu").mkdir(parents=True)
    (src / "mmlu" / "mmlu_demo.csv").write_text(
        'prompt,weak-m,strong-m\n"Q1\nA. x\nB. y\nAnswer:",True,True\n"Q2",False,True\n'
    )
    arena = src / "arena"
    arena.mkdir()
    for model, score in (("haiku", 0.0), ("flash", 1.0)):
        (arena / f"{model}.jsonl").write_text(
            json.dumps(
                {
                    "global_index": "X_1",
                    "question": "What?",
                    "evaluation_result": {"score": score, "inference_cost": 0.001},
                }
            )
            + "\n"
        )
    out = tmp_path / "labelled.jsonl"
    assert main(["convert", str(src), "--out", str(out)]) == 0
    rows = _read_jsonl(out)
    assert [r["id"] for r in rows] == ["mmlu/demo/0", "mmlu/demo/1", "routerarena/X_1"]
    assert rows[1]["scores"] == {"weak-m": 0.0, "strong-m": 1.0}
    assert rows[2]["scores"] == {"flash": 1.0, "haiku": 0.0}
    assert rows[2]["costs"] == {"flash": 0.001, "haiku": 0.001}
    assert [r["category"] for r in rows] == ["mmlu/demo", "mmlu/demo", "routerarena/X"]
    assert main(["convert", str(tmp_path / "nothing"), "--out", str(out)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_score_large_input_in_workers_matches_serial(tmp_path: Path) -> None:
    src = tmp_path / "big.jsonl"
    src.write_text(
        "".join(
            json.dumps({"id": i, "prompt": f"question {i}: what is {i} times {i + 3}?"}) + "\n"
            for i in range(4500)
        )
    )
    serial, parallel = tmp_path / "serial.jsonl", tmp_path / "parallel.jsonl"
    base = ["score", "--input", str(src), "--models", "gpt-4o-mini,gpt-4o", "--quiet"]
    assert main([*base, "--output", str(serial), "--workers", "1"]) == 0
    assert main([*base, "--output", str(parallel), "--workers", "2"]) == 0
    assert serial.read_bytes() == parallel.read_bytes()
    assert len(_read_jsonl(parallel)) == 4500


def test_default_router_single_and_batch_paths_agree() -> None:
    from gearshift.routing import default_predictor, prompt_request
    from gearshift.routing.features import extract
    from gearshift.routing.scoring import profiles_for_names

    predictor = default_predictor()
    profiles = profiles_for_names(["gpt-4o-mini", "gpt-4-1106-preview", "claude-3-5-haiku"])
    texts = ["hi", "What is 2+2?", "Prove that sqrt(2) is irrational.", "x" * 9000, "def f(): pass"]
    feats = [extract(prompt_request(t)) for t in texts]
    diffs, quals = predictor.predict_many(feats, profiles)
    for f, d, q in zip(feats, diffs, quals, strict=True):
        one_d, one_q = predictor.predict(f, profiles)
        assert one_d == pytest.approx(float(d), abs=1e-9)
        assert one_q == pytest.approx(q.tolist(), abs=1e-9)
    # a raw, continuous score: distinct prompts do not collapse onto one value
    assert len({round(float(d), 12) for d in diffs}) == len(texts)


def test_closed_stdout_ends_quietly() -> None:
    """`gearshift route ... | head` with the reader gone: exit 141 (SIGPIPE), no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gearshift.cli.main", "route", "Explain TCP slow start."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command has imported anything, let alone written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""
