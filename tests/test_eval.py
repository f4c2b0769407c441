"""medmat_builder.evaluate (eval/evaluate.py; issues 5, 18): deterministic scoring, both modes, circular evaluation, grounding end to end,
re-scoring, 2-process gather, micro CG experiment.

Everything runs offline on a tiny random LLaVA and a tiny synthetic export built here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from medmat_builder.evaluate import stats
from medmat_builder.evaluate.cli import main as evaluate_main
from medmat_builder.evaluate.grounding import parse_boxes
from medmat_builder.evaluate.items import EvalItem, load_items
from medmat_builder.evaluate.parsing import parse_letter
from medmat_builder.evaluate.runner import gather_predictions, likelihood_batch, load_scorer, shard
from medmat_builder.evaluate.scoring import Prediction, read_predictions
from medmat_builder.evaluate.testing import make_tiny_export, tiny_model

REPO = Path(__file__).resolve().parents[1]

CONFIGS = ["subset_25", "subset_26", "subset_28"]
N_TEST = 7  # odd, so a 2-process shard is uneven


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny") / "llava")


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    # a unique folder name: `datasets` caches local folders by name, and training reads through that cache
    name = f"eval-export-{uuid.uuid4().hex[:10]}"
    return make_tiny_export(tmp_path_factory.mktemp("export") / name, CONFIGS, n_train=12, n_test=N_TEST)


def _run(model: Path, export: Path, out: Path, mode: str, *extra: str) -> dict:
    assert evaluate_main([
        "--model_name_or_path", str(model), "--dataset_name", str(export), "--configs", "subset_28", "subset_26",
        "--mode", mode, "--batch_size", "3", "--output_dir", str(out), *extra,
    ]) == 0
    return json.loads((out / "results.json").read_text())


# ---------------------------------------------------------------------------------------------- parsing
OPTIONS = ["Normal", "Pneumonia", "COVID-19"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("B", "B"), ("(B)", "B"), ("B.", "B"), ("Answer: B", "B"), ("answer: C", "C"), ("The answer is (A).", "A"),
        ("[C]", "C"), ("B)", "B"), ("**B**", "B"), ("  B\n", "B"), ("B. Pneumonia", "B"), ("(C) COVID-19", "C"),
        ("B\nBecause the lungs ...", "B"), ("Pneumonia", "B"), ("covid-19.", "C"), ("  normal ", "A"),
        # unparseable: no guessing, no fuzzy match, no letters beyond the options, no lower-case letters
        ("", None), (None, None), ("D", None), ("Answer: D", None), ("b", None), ("I think it is B", None),
        ("A chest X-ray with opacities", None), ("Pneumonia or COVID-19", None), ("Normal, Pneumonia", None),
        ("pneumoni", None),
    ],
)
def test_parse_letter(text, expected):
    assert parse_letter(text, OPTIONS) == expected


def test_parse_letter_without_options_accepts_any_letter_form():
    assert parse_letter("Answer: D") == "D"
    assert parse_letter("Pneumonia") is None


# ---------------------------------------------------------------------------------------------- both modes
@pytest.mark.parametrize("mode", ["generate", "likelihood"])
def test_both_modes_tally_predictions_and_drop_nothing(mode, model, export, tmp_path):
    results = _run(model, export, tmp_path, mode)
    preds = read_predictions(tmp_path / "predictions.jsonl")
    assert results["mode"] == mode and results["model"] == str(model)
    import pyarrow.parquet as pq

    for config in ("subset_28", "subset_26"):
        r = results["configs"][config]
        test = pq.read_table(export / config / "test-00000-of-00001.parquet").to_pydict()
        assert r["n"] == r["split_size"] == len(test["id"]) == N_TEST
        got = [p for p in preds if p.config == config]
        assert [p.id for p in got] == test["id"]  # every item once, in split order
        # scored against the answers in the parquet file, from the raw outputs (or the arg-max score)
        read = [max(p.scores, key=p.scores.get) if mode == "likelihood" else parse_letter(p.raw_output, opts)
                for p, opts in zip(got, test["options"])]
        right = sum(a == b for a, b in zip(read, test["answer"]))
        assert (r["correct"], r["unparseable"]) == (right, sum(a is None for a in read))
        assert r["ci95"] == pytest.approx(stats.wilson_interval(right, N_TEST))
        assert r["chance"] == pytest.approx(sum(1 / len(o) for o in test["options"]) / N_TEST)
        top = Counter(test["answer"]).most_common()
        assert r["majority_accuracy"] == top[0][1] / N_TEST
        assert sum(v["n"] for v in r["per_label"].values()) == r["n"]
        assert len(results["dataset_fingerprint"][config]) == 64
    lines = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert {"id", "config", "prompt", "raw_output", "parsed", "gold"} <= set(lines[0])
    assert "<image>" in lines[0]["prompt"] and "A. " in lines[0]["prompt"]
    if mode == "likelihood":  # every option scored, the answer is the arg-max, never unparseable
        for line in lines:
            assert sorted(line["scores"]) == list("ABCD"[: len(line["options"])])
            assert line["parsed"] == max(line["scores"], key=line["scores"].get)
        assert results["overall"]["unparseable"] == 0


@pytest.mark.parametrize("mode", ["generate", "likelihood"])
def test_both_modes_on_a_demo_build_by_mixture(mode, model, demo_export, tmp_path):
    """A tiny model on a config that `medmat build --demo` wrote, named through a planner mixture."""
    export = demo_export / "medmat"
    assert evaluate_main([
        "--model_name_or_path", str(model), "--dataset_name", str(export), "--mixture", "related:subset_28",
        "--mode", mode, "--batch_size", "4", "--output_dir", str(tmp_path),
    ]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    report = json.loads((export / "build_report.json").read_text())
    assert list(results["configs"]) == ["subset_28"] and results["mixture"] == "related:subset_28"
    r = results["configs"]["subset_28"]
    assert r["n"] == r["split_size"] == report["configs"]["subset_28"]["num_examples"]["test"]
    preds = read_predictions(tmp_path / "predictions.jsonl")
    import pyarrow.parquet as pq

    test = pq.read_table(next((export / "subset_28").glob("test-*.parquet"))).to_pydict()
    gold = dict(zip(test["id"], test["answer"]))
    assert sorted(p.id for p in preds) == sorted(gold)  # the built test split, each item once
    assert r["correct"] == sum(p.parsed == gold[p.id] for p in preds)  # against the built answers, not ours


def test_circular_run_asks_every_rotation_and_keeps_plain_accuracy(model, export, tmp_path):
    plain = _run(model, export, tmp_path / "plain", "likelihood")["configs"]["subset_28"]
    results = _run(model, export, tmp_path / "circ", "likelihood", "--circular")
    r = results["configs"]["subset_28"]
    assert results["circular"] is True
    preds = [p for p in read_predictions(tmp_path / "circ" / "predictions.jsonl") if p.config == "subset_28"]
    import pyarrow.parquet as pq

    test = pq.read_table(export / "subset_28" / "test-00000-of-00001.parquet").to_pydict()
    assert r["circular"]["rotations"] == len(preds) == sum(len(o) for o in test["options"])
    for item_id, options, answer in zip(test["id"], test["options"], test["answer"]):
        mine = sorted((p for p in preds if p.id == item_id), key=lambda p: p.rotation)
        assert [p.rotation for p in mine] == list(range(len(options)))
        # the correct option text stands under the moved letter, and the prompt shows the rotated options
        assert all(p.options["ABCD".index(p.gold)] == options["ABCD".index(answer)] for p in mine)
        assert all(f"A. {p.options[0]}" in p.prompt for p in mine)
    # rotation 0 is the item as written: the plain numbers equal a run without --circular
    assert (r["n"], r["correct"], r["ci95"]) == (plain["n"], plain["correct"], plain["ci95"])
    right = {i: all(p.parsed == p.gold for p in preds if p.id == i) for i in test["id"]}
    assert (r["circular"]["n"], r["circular"]["correct"]) == (N_TEST, sum(right.values()))
    assert r["circular"]["correct"] <= r["correct"]


def test_evaluate_scores_a_grounding_config_end_to_end(model, demo_export, tmp_path):
    """A tiny model generates boxes for subset_38 of a demo build; then hand answers are re-scored."""
    import pyarrow.parquet as pq

    export = demo_export / "medmat"
    out = tmp_path / "run"
    assert evaluate_main([
        "--model_name_or_path", str(model), "--dataset_name", str(export), "--configs", "subset_38",
        "--mode", "likelihood", "--grounding_max_new_tokens", "12", "--batch_size", "8", "--output_dir", str(out),
    ]) == 0
    results = json.loads((out / "results.json").read_text())
    r = results["configs"]["subset_38"]
    test = pq.read_table(next((export / "subset_38").glob("test-*.parquet"))).to_pylist()
    assert r["task"] == "grounding" and r["scored_by"] == "generate"  # boxes are generated in either mode
    assert r["n"] == r["split_size"] == len(test) > 1 and all(row["boxes"] for row in test)
    assert r["objects"]["reference"] == sum(len(row["boxes"]) for row in test)
    preds = read_predictions(out / "predictions.jsonl")
    assert [p.id for p in preds] == [row["id"] for row in test]
    assert r["unparseable"] == sum(parse_boxes(p.raw_output) is None for p in preds)
    # the same items answered by hand: the gold answer text for the first half, a box beside it for the rest
    half = len(test) // 2
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    for i, (line, row) in enumerate(zip(lines, test)):
        b = row["boxes"][0]
        line["raw_output"] = row["answer"] if i < half else f"{b['label']}: [{b['x2']}, {b['y2']}, 1000, 1000]"
    hand = tmp_path / "hand.jsonl"
    hand.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert evaluate_main(["--predictions", str(hand), "--output_dir", str(tmp_path / "rescored")]) == 0
    again = json.loads((tmp_path / "rescored" / "results.json").read_text())["configs"]["subset_38"]
    assert (again["correct"], again["unparseable"]) == (half, 0)
    assert again["recall"] == pytest.approx(sum(len(row["boxes"]) for row in test[:half]) / again["objects"]["reference"])


def test_limit_takes_first_items(model, export, tmp_path):
    results = _run(model, export, tmp_path, "likelihood", "--limit", "2")
    assert results["configs"]["subset_28"]["n"] == 2
    assert results["configs"]["subset_28"]["split_size"] == N_TEST


def test_likelihood_is_batch_invariant_and_both_paths_agree(model, export):
    items, _ = load_items(str(export), ["subset_28"])
    scorer = load_scorer(str(model), device="cpu", dtype="float32")
    one = [p for it in items for p in likelihood_batch(scorer, [it])]
    batched = likelihood_batch(scorer, items)
    per_option = likelihood_batch(scorer, items, per_option=True)
    for a, b, c in zip(one, batched, per_option):
        assert a.parsed == b.parsed == c.parsed
        for letter in a.scores:
            assert a.scores[letter] == pytest.approx(b.scores[letter], abs=1e-4)
            assert a.scores[letter] == pytest.approx(c.scores[letter], abs=1e-4)


# ---------------------------------------------------------------------------------------------- re-scoring
def test_handwritten_predictions_give_exact_accuracy(tmp_path):
    opts = ["Normal", "Pneumonia", "COVID-19", "Tuberculosis"]
    rows = [  # (config, raw output, gold, gold label)
        ("subset_28", "B", "B", "Pneumonia"),           # right
        ("subset_28", "(C)", "C", "COVID-19"),          # right
        ("subset_28", "Answer: A", "B", "Pneumonia"),   # wrong
        ("subset_28", "Tuberculosis", "D", "Tuberculosis"),  # right, by option text
        ("subset_28", "I am not sure", "A", "Normal"),  # unparseable
        ("subset_28", "E", "A", "Normal"),              # unparseable: no option E
        ("subset_26", "A.", "A", "Normal"),             # right
        ("subset_26", "", "B", "Pneumonia"),            # unparseable
    ]
    path = tmp_path / "hand.jsonl"
    path.write_text("".join(
        json.dumps({"id": f"{c}-{i}", "config": c, "prompt": "q", "raw_output": raw, "parsed": "A",  # stale parse
                    "gold": gold, "gold_label": label, "options": opts}) + "\n"
        for i, (c, raw, gold, label) in enumerate(rows)
    ))
    out = tmp_path / "out"
    assert evaluate_main(["--predictions", str(path), "--output_dir", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    s28, s26 = res["configs"]["subset_28"], res["configs"]["subset_26"]
    assert (s28["n"], s28["correct"], s28["unparseable"]) == (6, 3, 2)
    assert s28["accuracy"] == 0.5
    assert (s26["n"], s26["correct"], s26["unparseable"]) == (2, 1, 1)
    assert s28["per_label"]["Pneumonia"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert s28["per_label"]["Normal"] == {"n": 2, "correct": 0, "accuracy": 0.0}
    assert res["overall"]["n"] == 8 and res["overall"]["correct"] == 4
    # the rewritten predictions carry the fresh parse, and re-scoring them again is a fixed point, also
    # through `medmat eval` (the installed package's command: every flag goes to the same code)
    from medmat_builder.cli import main as medmat

    again = tmp_path / "again"
    assert medmat(["eval", "--predictions", str(out / "predictions.jsonl"), "--output_dir", str(again)]) == 0
    assert json.loads((again / "results.json").read_text())["configs"] == res["configs"]


def test_duplicate_items_are_refused(tmp_path):
    line = json.dumps({"id": "x", "config": "subset_28", "raw_output": "A", "gold": "A"}) + "\n"
    (tmp_path / "dup.jsonl").write_text(line * 2)
    with pytest.raises(ValueError, match="more than once"):
        evaluate_main(["--predictions", str(tmp_path / "dup.jsonl"), "--output_dir", str(tmp_path / "o")])


def test_gather_detects_lost_and_duplicated_items():
    def pred(i):
        return i, Prediction(id=str(i), config="c", prompt="", raw_output="A", parsed="A", gold="A")

    items = [EvalItem(i, str(i), "c", "", ["x"], "A", "x", None) for i in range(5)]
    assert sorted(it.index for r in range(2) for it in shard(items, r, 2)) == list(range(5))
    assert [p.id for p in gather_predictions([pred(3), pred(0), pred(1), pred(2)], 4)] == ["0", "1", "2", "3"]
    with pytest.raises(RuntimeError, match="lost"):
        gather_predictions([pred(0), pred(2)], 3)
    with pytest.raises(RuntimeError, match="duplicated: 1"):
        gather_predictions([pred(0), pred(1), pred(1)], 3)


# ---------------------------------------------------------------------------------------------- data parallel
@pytest.mark.multiprocess
@pytest.mark.xdist_group("multiprocess")
def test_two_process_run_gathers_every_item_once(model, export, tmp_path):
    cfg = tmp_path / "cpu2.yaml"
    cfg.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_machines: 1\n"
                   "num_processes: 2\nuse_cpu: true\nmixed_precision: 'no'\n")
    out = tmp_path / "dp"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg), "--main_process_port", "0",
         str(REPO / "eval" / "evaluate.py"), "--model_name_or_path", str(model), "--dataset_name", str(export),
         "--configs", "subset_28", "subset_26", "--mode", "likelihood", "--batch_size", "2", "--output_dir", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["num_processes"] == 2
    preds = read_predictions(out / "predictions.jsonl")
    assert len(preds) == 2 * N_TEST and len({(p.config, p.id) for p in preds}) == 2 * N_TEST
    assert Counter(p.process for p in preds) == {0: N_TEST, 1: N_TEST}  # 14 items split 7/7 over 2 ranks
    single = tmp_path / "single"
    _run(model, export, single, "likelihood")
    one = read_predictions(single / "predictions.jsonl")
    assert [(p.config, p.id, p.parsed) for p in preds] == [(p.config, p.id, p.parsed) for p in one]
    assert results["configs"]["subset_28"]["correct"] == json.loads((single / "results.json").read_text())[
        "configs"]["subset_28"]["correct"]


# ---------------------------------------------------------------------------------------------- experiment + report
def test_micro_experiment_writes_table_and_plot(model, export, tmp_path):
    from medmat_builder.evaluate import report
    from medmat_builder.evaluate.experiments.cli import Experiment
    from medmat_builder.evaluate.experiments.spec import ExperimentSpec

    spec = ExperimentSpec.model_validate({
        "name": "micro", "backbone": str(model), "dataset": str(export), "target": "subset_28",
        "recipe": str(REPO / "training" / "recipes" / "tiny_cpu.yaml"),
        "train_args": {"max_steps": 1, "per_device_train_batch_size": 2},
        "eval": {"mode": "likelihood", "batch_size": 4, "circular": True}, "alpha": 0.1,
        "arms": {"Baseline": {}, "Trained": {"train_configs": ["subset_25"], "budget": 6}},
        "volume": [{"name": "rq1", "sizes": [0, 6], "series": {"Related": {"train_configs": ["subset_25"]}}}],
    })
    out = tmp_path / "xp"
    written = Experiment(spec, out, log=lambda *_: None).run()
    assert len(list((out / "models").glob("*/config.json"))) == 1  # the Trained arm is also the volume point
    md = (out / "table.md").read_text()
    assert md.startswith("| Related combination | Target subset | metric | n | chance | majority letter | Baseline | "
                         "Trained | p Trained vs Baseline | success |")
    assert "subset_28" in md and "subset_25" in md and "p < 0.1" in md
    csv_rows = (out / "table.csv").read_text().splitlines()
    assert csv_rows[0] == ("combination,target,metric,n,chance,majority,Baseline,Baseline ci_low,Baseline ci_high,"
                           "Trained,Trained ci_low,Trained ci_high,p Trained vs Baseline,success")
    assert [row.split(",")[2] for row in csv_rows[1:]] == ["accuracy", "circular"]  # the circular run's own row
    assert csv_rows[2].endswith(",")  # no Baseline+ arm: success undecided, left empty
    assert written["plots"] == [str(out / "cg_table.png"), str(out / "volume_rq1.png")]
    assert all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written["plots"])
    baseline = json.loads((out / "runs" / "baseline" / "results.json").read_text())["configs"]["subset_28"]
    lo, hi = stats.wilson_interval(baseline["correct"], baseline["n"])
    assert f"| {100 * baseline['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] |" in md
    assert baseline["circular"]["n"] == N_TEST
    table = json.loads((out / "table.json").read_text())
    assert table["alpha"] == 0.1 and table["rows"][0]["n"] == [N_TEST]
    assert "| volume | n | chance | Related |" in (out / "volume_rq1.md").read_text()
    # re-rendered from the result files alone (no model) into another folder: same table
    again = report.render(out, tmp_path / "again", arm_order=["Baseline", "Trained"])
    assert again["markdown"] == md


def _fake_run(root: Path, name: str, arm: str, target: str, correct: int, n: int = 10, **meta) -> None:
    """A run folder as older versions wrote it: counts only, no predictions.jsonl to pair items with."""
    d = root / name
    d.mkdir(parents=True)
    (d / "arm.json").write_text(json.dumps({"arm": arm, "targets": [target], "combination": "subset_25 + subset_26",
                                            **meta}))
    (d / "results.json").write_text(json.dumps({"configs": {target: {
        "n": n, "correct": correct, "accuracy": correct / n, "unparseable": 0, "per_label": {}}}}))


def test_report_without_predictions_shows_intervals_but_claims_no_success(tmp_path):
    from medmat_builder.evaluate import report

    for target, (b, bp, t) in {"subset_03": (3, 4, 6), "subset_28": (3, 6, 5)}.items():
        _fake_run(tmp_path, f"b_{target}", "Baseline", target, b)
        _fake_run(tmp_path, f"bp_{target}", "Baseline+", target, bp)
        _fake_run(tmp_path, f"t_{target}", "Trained", target, t)
    for size, c in ((0, 3), (100, 5), (200, 7)):
        _fake_run(tmp_path, f"v{size}", "Related", "subset_03", c, series="Related", figure="rq1", volume=size)
    columns, rows = report.cg_table(report.collect_runs(tmp_path), ["Baseline", "Baseline+", "Trained"])
    assert columns[-3:] == ["p Trained vs Baseline", "p Trained vs Baseline+", "success"]
    # Trained 6/10 above 3/10 and 4/10, but without paired items there is no test, so no success either way
    assert {r["target"]: r["success"] for r in rows} == {"subset_03": None, "subset_28": None}
    assert rows[0]["Trained"]["ci95"] == list(stats.wilson_interval(6, 10))
    curves = report.volume_curves(report.collect_runs(tmp_path))
    assert {f: {s: [(r.volume, r.accuracy) for r in rs] for s, rs in c.items()} for f, c in curves.items()} == \
        {"rq1": {"Related": [(0, 0.3), (100, 0.5), (200, 0.7)]}}
    written = report.render(tmp_path)
    assert "🟩" not in written["markdown"] and "| 60.0 [31.3, 83.2] |" in written["markdown"]
    assert (tmp_path / "volume_rq1.png").is_file()
