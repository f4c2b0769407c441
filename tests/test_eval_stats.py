"""Statistics on accuracies (issue 18): Wilson intervals, McNemar, chance/majority levels, circular evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmat_builder.evaluate import stats
from medmat_builder.evaluate.items import EvalItem, rotate_question, rotations
from medmat_builder.evaluate.scoring import Prediction, correct_by_id, tally

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- intervals, tests
@pytest.mark.parametrize("k, n, low, high", [
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score, no continuity correction)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_interval_matches_published_values(k, n, low, high):
    lo, hi = stats.wilson_interval(k, n)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


def test_wilson_interval_matches_its_formula_and_edges():
    k, n, z = 2, 7, 1.959963984540054
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z / (1 + z * z / n) * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5)
    assert stats.wilson_interval(k, n) == pytest.approx((centre - half, centre + half))
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="0..n"):
        stats.wilson_interval(8, 7)


@pytest.mark.parametrize("a_only, b_only, p", [
    (2, 8, 2 * (1 + 10 + 45) / 1024),   # 2 * P(X <= 2), X ~ Bin(10, 1/2)
    (0, 5, 2 / 32),
    (5, 0, 2 / 32),
    (3, 3, 1.0),
    (0, 0, 1.0),                         # no discordant pair: no evidence of a difference
    (0, 10, 2 / 1024),
])
def test_exact_mcnemar_hand_computed(a_only, b_only, p):
    assert stats.mcnemar_exact(a_only, b_only) == pytest.approx(p)


def test_paired_comparison_pairs_by_id_and_counts_discordant_items():
    a = {"x": True, "y": True, "z": False, "w": True, "only_a": True}
    b = {"w": True, "z": True, "y": False, "x": False, "only_b": False}
    cmp = stats.paired_comparison(a, b)
    assert (cmp.n, cmp.a_correct, cmp.b_correct, cmp.a_only, cmp.b_only, cmp.unpaired) == (4, 3, 2, 2, 1, 2)
    assert cmp.p_value == pytest.approx(1.0)  # 2 vs 1 discordant: Bin(3, 1/2), two-sided
    assert cmp.difference == pytest.approx(0.25)


def test_chance_majority_and_top_answer():
    assert stats.chance_level([2, 4, 4]) == pytest.approx((1 / 2 + 1 / 4 + 1 / 4) / 3)
    assert stats.circular_chance_level([2, 4]) == pytest.approx((1 / 4 + 1 / 256) / 2)
    assert stats.majority_level(["B", "A", "B", "C"]) == ("B", 0.5)
    assert stats.majority_level(["C", "A"]) == ("A", 0.5)  # ties: earliest letter
    assert stats.top_answer_share(["A", "A", None, "B"]) == ("A", 0.5)
    assert stats.chance_level([]) is None and stats.majority_level([]) == (None, None)


# ---------------------------------------------------------------------------------------------- circular evaluation
QUESTION = "Which finding?\nA. Normal\nB. Pneumonia\nC. COVID-19\nAnswer with the option's letter from the given choices directly."


def _item(gold="B"):
    return EvalItem(0, "q1", "subset_28", QUESTION, ["Normal", "Pneumonia", "COVID-19"], gold, "Pneumonia", None)


def test_rotations_move_the_options_and_the_answer_letter():
    rot = rotations(_item())
    assert [r.rotation for r in rot] == [0, 1, 2]
    assert [r.options for r in rot] == [["Normal", "Pneumonia", "COVID-19"], ["Pneumonia", "COVID-19", "Normal"],
                                        ["COVID-19", "Normal", "Pneumonia"]]
    assert [r.gold for r in rot] == ["B", "A", "C"]  # the correct option stands once under every letter
    assert all(r.options["ABC".index(r.gold)] == "Pneumonia" for r in rot)
    assert rot[0].question == QUESTION
    assert rot[1].question == ("Which finding?\nA. Pneumonia\nB. COVID-19\nC. Normal\n"
                               "Answer with the option's letter from the given choices directly.")


def test_rotating_a_question_without_option_lines_fails_clearly():
    with pytest.raises(ValueError, match="'A. text' lines"):
        rotate_question("Which finding? Normal or Pneumonia", ["Normal", "Pneumonia"], 1)


def _preds(answers, golds, n_options=3, rotated=True, config="subset_28"):
    out = []
    for i, (ans, gold) in enumerate(zip(answers, golds)):
        for k, a in enumerate(ans if rotated else ans[:1]):
            g = "ABC"[("ABC".index(gold) - k) % n_options]
            out.append(Prediction(id=f"q{i}", config=config, prompt="", raw_output=a, parsed=a, gold=g,
                                  options=["x", "y", "z"][:n_options], rotation=k if rotated else None))
    return out


def test_circular_accuracy_needs_every_rotation_right():
    # q0: right in every rotation; q1: right as written, wrong once rotated; q2: wrong as written
    preds = _preds([("B", "A", "C"), ("A", "A", "A"), ("C", "B", "A")], ["B", "A", "A"])
    r = tally(preds)["subset_28"]
    assert (r["n"], r["correct"]) == (3, 2)  # plain accuracy: rotation 0 only
    c = r["circular"]
    assert (c["n"], c["correct"], c["rotations"]) == (3, 1, 9)
    assert c["ci95"] == list(stats.wilson_interval(1, 3))
    assert c["chance"] == pytest.approx(1 / 27)
    assert correct_by_id(preds, circular=True) == {"q0": True, "q1": False, "q2": False}
    with pytest.raises(ValueError, match="lack some rotations"):
        tally(preds[:-1])


def test_tally_reports_levels_and_flags_letter_bias():
    golds = ["A", "B", "B", "C", "B", "A", "B", "C", "B", "B"]
    biased = tally(_preds([("B",)] * 10, golds, rotated=False))["subset_28"]
    assert (biased["correct"], biased["majority_letter"], biased["majority_accuracy"]) == (6, "B", 0.6)
    assert biased["chance"] == pytest.approx(1 / 3)
    assert (biased["top_answer"], biased["top_answer_share"], biased["letter_bias"]) == ("B", 1.0, True)
    assert biased["ci95"] == list(stats.wilson_interval(6, 10)) and "circular" not in biased
    varied = tally(_preds([(g,) for g in golds], golds, rotated=False))["subset_28"]
    assert varied["letter_bias"] is False and varied["accuracy"] == 1.0


# ---------------------------------------------------------------------------------------------- report
def _run(root: Path, name: str, arm: str, target: str, right: list[bool], circular: list[bool] | None = None,
         **meta) -> None:
    """A run folder with predictions (plain answers, and 2 rotations when ``circular`` is given)."""
    d = root / name
    d.mkdir(parents=True)
    (d / "arm.json").write_text(json.dumps({"arm": arm, "targets": [target], "combination": "subset_25", **meta}))
    preds = []
    for i, ok in enumerate(right):
        rots = [ok, circular[i]] if circular else [ok]
        for k, r in enumerate(rots):
            gold = "AB"[k]  # the correct option moves one letter per rotation
            ans = gold if r else "AB"[1 - k]
            preds.append(Prediction(id=f"i{i}", config=target, prompt="", raw_output=ans, parsed=ans, gold=gold,
                                    options=["x", "y"], rotation=k if circular else None))
    from medmat_builder.evaluate.cli import write_results

    write_results(d, preds, {"model": arm})


def test_success_needs_a_significant_paired_difference(tmp_path):
    from medmat_builder.evaluate import report

    n = 30
    # subset_03: Trained right on 20 items the baselines miss -> p < 0.05; subset_28: 2 more right -> not significant
    _run(tmp_path, "b3", "Baseline", "subset_03", [i < 5 for i in range(n)])
    _run(tmp_path, "bp3", "Baseline+", "subset_03", [i < 6 for i in range(n)])
    _run(tmp_path, "t3", "Trained", "subset_03", [i < 25 for i in range(n)])
    _run(tmp_path, "b28", "Baseline", "subset_28", [i < 10 for i in range(n)])
    _run(tmp_path, "bp28", "Baseline+", "subset_28", [i < 10 for i in range(n)])
    _run(tmp_path, "t28", "Trained", "subset_28", [i < 12 for i in range(n)])
    columns, rows = report.cg_table(report.collect_runs(tmp_path), ["Baseline", "Baseline+", "Trained"])
    assert columns == ["combination", "target", "metric", "n", "chance", "majority", "Baseline", "Baseline+",
                       "Trained", "p Trained vs Baseline", "p Trained vs Baseline+", "success"]
    by = {r["target"]: r for r in rows}
    assert by["subset_03"]["p Trained vs Baseline"]["p_value"] == pytest.approx(stats.mcnemar_exact(20, 0))
    assert by["subset_28"]["p Trained vs Baseline"]["p_value"] == pytest.approx(stats.mcnemar_exact(2, 0))
    assert by["subset_03"]["success"] is True
    assert by["subset_28"]["success"] is False  # higher, but within noise (p = 0.5)
    assert by["subset_28"]["Trained"]["ci95"] == list(stats.wilson_interval(12, n))
    assert by["subset_28"]["n"] == [n] and by["subset_28"]["chance"] == 0.5
    _, strict = report.cg_table(report.collect_runs(tmp_path), alpha=1e-7)
    assert {r["target"]: r["success"] for r in strict} == {"subset_03": False, "subset_28": False}


def test_circular_decides_success_and_table_shows_everything(tmp_path):
    from medmat_builder.evaluate import report

    n = 20
    # Trained is right on every item as written but only because it answers 'A' (wrong in every 2nd rotation)
    _run(tmp_path, "b", "Baseline", "subset_28", [False] * n, circular=[False] * n)
    _run(tmp_path, "bp", "Baseline+", "subset_28", [False] * n, circular=[False] * n)
    _run(tmp_path, "t", "Trained", "subset_28", [True] * n, circular=[False] * n)
    (tmp_path / "spec.yaml").write_text("alpha: 0.01\n")
    written = report.render(tmp_path)
    table = json.loads((tmp_path / "table.json").read_text())
    assert table["alpha"] == 0.01
    plain, circ = table["rows"]
    assert (plain["metric"], plain["decides"], plain["success"]) == ("accuracy", False, None)
    assert plain["p Trained vs Baseline"]["p_value"] < 0.01  # a real-looking jump on plain accuracy ...
    assert (circ["metric"], circ["decides"], circ["success"]) == ("circular", True, False)  # ... that circular undoes
    md = written["markdown"]
    assert "| 〃 | subset_28 | circular | 20 | 25.0 | 0.0 |" in md
    assert f"| 100.0 [{100 * stats.wilson_interval(20, 20)[0]:.1f}, 100.0] |" in md
    assert "🟥 no" in md and "p < 0.01" in md
    assert "Trained on subset_28: 100% of the answers are 'A'" in md
    header = (tmp_path / "table.csv").read_text().splitlines()[0].split(",")
    assert header[6:9] == ["Baseline", "Baseline ci_low", "Baseline ci_high"]
    assert (tmp_path / "cg_table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_related_vs_unrelated_is_tested_in_tables_and_volume_curves(tmp_path):
    from medmat_builder.evaluate import report

    assert report.comparisons(["Baseline", "All Related", "All Unrelated", "Trained", "Related", "Unrelated"]) == [
        ("Trained", "Baseline"), ("All Related", "All Unrelated"), ("Related", "Unrelated")]
    n = 40
    _run(tmp_path, "ar", "All Related", "subset_03", [i < 30 for i in range(n)])
    _run(tmp_path, "au", "All Unrelated", "subset_03", [i < 12 for i in range(n)])
    for series, right in (("Related", 25), ("Unrelated", 22)):
        for volume in (0, 100):
            _run(tmp_path, f"{series}{volume}", series, "subset_03", [i < (right if volume else 10) for i in range(n)],
                 series=series, figure="rq1", volume=volume, xlabel="combination samples")
    _, rows = report.cg_table(report.collect_runs(tmp_path))
    cmp = rows[0]["p All Related vs All Unrelated"]
    assert (cmp["n"], cmp["a_only"], cmp["b_only"]) == (n, 18, 0)
    assert cmp["p_value"] == pytest.approx(stats.mcnemar_exact(18, 0)) and rows[0]["success"] is None
    columns, vrows = report.volume_rows(report.volume_curves(report.collect_runs(tmp_path))["rq1"])
    assert columns == ["volume", "n", "chance", "Related", "Unrelated", "p Related vs Unrelated"]
    assert [r["volume"] for r in vrows] == [0, 100]
    assert vrows[0]["p Related vs Unrelated"]["p_value"] == 1.0  # same answers at volume 0
    assert vrows[1]["p Related vs Unrelated"]["p_value"] == pytest.approx(stats.mcnemar_exact(3, 0))
    assert vrows[1]["Related"]["ci95"] == list(stats.wilson_interval(25, n))
    written = report.render(tmp_path)
    assert "| 100 | 40 | 50.0 | 62.5 [47.0, 75.8] | 55.0 [39.8, 69.3] | 0.250 |" in (tmp_path / "volume_rq1.md").read_text()
    assert str(tmp_path / "volume_rq1.png") in written["plots"]
