"""Grounding evaluation (issue 18): box styles, IoU, one-to-one matching, scoring a grounding config end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmat_builder.evaluate.cli import main as evaluate_main
from medmat_builder.evaluate.grounding import (
    GRID, NO_OBJECT, PredBox, box_iou, format_boxes, match_boxes, parse_boxes, reference_boxes,
)
from medmat_builder.evaluate.runner import BOX_TOKENS, decode

REPO = Path(__file__).resolve().parents[1]


def _box(x1, y1, x2, y2, label="lesion"):
    return PredBox(label, float(x1), float(y1), float(x2), float(y2))


# ---------------------------------------------------------------------------------------------- IoU
@pytest.mark.parametrize("a, b, expected", [
    ((0, 0, 100, 100), (0, 0, 100, 100), 1.0),
    ((0, 0, 100, 100), (50, 50, 150, 150), 2500 / 17500),      # 50x50 overlap, union 10000 + 10000 - 2500
    ((0, 0, 100, 100), (0, 0, 100, 50), 0.5),                   # half of it: exactly the threshold
    ((0, 0, 200, 100), (100, 0, 300, 100), 10000 / 30000),
    ((0, 0, 100, 100), (100, 0, 200, 100), 0.0),                # touching edges share no area
    ((0, 0, 100, 100), (300, 300, 400, 400), 0.0),
    ((10, 10, 10, 50), (10, 10, 10, 50), 0.0),                  # degenerate: no area, matches nothing
])
def test_box_iou_hand_computed(a, b, expected):
    assert box_iou(a, b) == pytest.approx(expected)
    assert box_iou(b, a) == pytest.approx(expected)


@pytest.mark.parametrize("pred, clipped", [
    (_box(-100, -50, 100, 100), (0, 0, 100, 100)),             # partly left of / above the image
    (_box(900, 900, 1300, 1200), (900, 900, 1000, 1000)),       # partly beyond 1000
    (_box(100, 100, 0, 0), (0, 0, 100, 100)),                   # corners reversed: put in order
    (_box(1100, 1100, 1200, 1200), (1000, 1000, 1000, 1000)),   # wholly outside: no area left
])
def test_out_of_range_and_reversed_boxes_are_clipped_and_ordered(pred, clipped):
    assert pred.clipped() == clipped
    ref = _box(*clipped)
    expected = 0.0 if clipped[0] == clipped[2] else 1.0
    assert match_boxes([pred], [ref]).ref_ious == [expected]


# ---------------------------------------------------------------------------------------------- styles
BOXES = [_box(102, 220, 380, 515, "polyp"), _box(600, 40, 720, 180, "polyp")]


@pytest.mark.parametrize("text, style", [
    ("polyp: [102, 220, 380, 515]; polyp: [600, 40, 720, 180]", "plain"),
    ("polyp: [102,220,380,515];polyp:[600, 40, 720, 180].", "plain"),
    ("<|object_ref_start|>polyp<|object_ref_end|><|box_start|>(102,220),(380,515)<|box_end|>"
     "<|box_start|>(600,40),(720,180)<|box_end|>", "qwen2_vl"),      # two boxes after one reference
    ("<|object_ref_start|>polyp<|object_ref_end|><|box_start|>(102,220),(380,515)<|box_end|>"
     "<|object_ref_start|>polyp<|object_ref_end|><|box_start|>(600,40),(720,180)<|box_end|>", "qwen2_vl"),
    ("polyp(102,220),(380,515); polyp(600,40),(720,180)", "qwen2_vl"),   # special tokens stripped by decoding
])
def test_every_style_reads_the_same_boxes(text, style):
    assert parse_boxes(text) == (style, BOXES)


def test_minigpt_v2_style_is_a_0_100_grid():
    got = parse_boxes("<p>polyp</p> {<10><22><38><51>}<delim>{<60><4><72><18>}")
    assert got == ("minigpt_v2", [_box(100, 220, 380, 510, "polyp"), _box(600, 40, 720, 180, "polyp")])


def test_unlabelled_none_and_unparseable_answers():
    assert parse_boxes("[1, 2, 3, 4]") == ("plain", [_box(1, 2, 3, 4, "")])
    assert parse_boxes("None.") == ("none", [])
    for bad in (None, "", "a lesion in the upper left", "lesion: [1, 2, 3]", "lesion: [a, b, c, d]", "(1,2)"):
        assert parse_boxes(bad) is None, bad


def test_constants_agree_with_the_builder_and_the_build_answer_reads_back():
    from medmat_builder.build.boxes import format_box_answer
    from medmat_builder.records import NO_BOX_ANSWER, SCALE

    assert (NO_OBJECT, GRID) == (NO_BOX_ANSWER, SCALE)
    answer = format_box_answer([("Skin lesion", 141, 344, 562, 812), ("Skin lesion", 5, 6, 70, 80)])
    style, boxes = parse_boxes(answer)
    assert style == "plain" and {b.label for b in boxes} == {"Skin lesion"}
    assert parse_boxes(format_boxes(boxes)) == ("plain", boxes)
    assert parse_boxes(format_box_answer([])) == ("none", [])


# ---------------------------------------------------------------------------------------------- matching
def test_extra_and_missing_objects():
    ref = [_box(0, 0, 100, 100), _box(500, 500, 700, 700)]
    extra = match_boxes([_box(0, 0, 100, 100), _box(500, 500, 700, 700), _box(900, 0, 950, 50)], ref)
    assert (extra.matched, extra.n_pred, extra.n_ref, extra.correct) == (2, 3, 2, True)  # extras cost precision
    missing = match_boxes([_box(500, 500, 700, 700)], ref)
    assert (missing.matched, missing.correct, missing.ref_ious) == (1, False, [0.0, 1.0])
    nothing = match_boxes([], ref)
    assert (nothing.matched, nothing.correct, nothing.ref_ious) == (0, False, [0.0, 0.0])
    assert match_boxes([], []).correct and not match_boxes([_box(0, 0, 9, 9)], []).correct


def test_matching_is_one_to_one_and_label_aware():
    ref = [_box(0, 0, 100, 100, "Skin lesion")]
    twice = match_boxes([_box(0, 0, 100, 100, "Skin lesion"), _box(0, 0, 100, 100, "skin  LESION")], ref)
    assert (twice.matched, twice.n_pred) == (1, 2)  # one reference pairs once, whatever the case/spacing
    assert match_boxes([_box(0, 0, 100, 100, "polyp")], ref).matched == 0  # wrong label
    assert match_boxes([_box(0, 0, 100, 100, "")], ref).matched == 1  # unlabelled pairs with any label
    below = match_boxes([_box(50, 50, 150, 150, "Skin lesion")], ref)
    assert below.matched == 0 and below.ref_ious == [pytest.approx(1 / 7)]  # paired for IoU, not matched


def test_decode_keeps_box_tokens_and_drops_other_special_tokens():
    class Tok:
        all_special_tokens = ["</s>", "<pad>", "<|box_start|>", "<|box_end|>"]

        def batch_decode(self, ids, skip_special_tokens):
            text = "<|box_start|>(1,2),(3,4)<|box_end|></s><pad>"
            return [text.replace("<|box_start|>", "").replace("<|box_end|>", "").replace("</s>", "")
                    .replace("<pad>", "") if skip_special_tokens else text for _ in ids]

    assert decode(Tok(), [0], BOX_TOKENS) == ["<|box_start|>(1,2),(3,4)<|box_end|>"]
    assert decode(Tok(), [0]) == ["(1,2),(3,4)"]


# ---------------------------------------------------------------------------------------------- scoring
def test_handwritten_grounding_predictions_give_exact_scores(tmp_path):
    one = [{"label": "polyp", "x1": 0, "y1": 0, "x2": 100, "y2": 100}]
    two = one + [{"label": "polyp", "x1": 500, "y1": 500, "x2": 700, "y2": 700}]
    rows = [  # (raw output, reference boxes)
        ("polyp: [0, 0, 100, 100]", one),                                                   # right, IoU 1
        ("<|object_ref_start|>polyp<|object_ref_end|><|box_start|>(0,0),(100,50)<|box_end|>", one),  # IoU 0.5: right
        ("polyp: [50, 50, 150, 150]", one),                                                 # IoU 1/7: wrong
        ("I cannot see a polyp", one),                                                      # unparseable
        ("polyp: [500, 500, 700, 700]; polyp: [900, 900, 950, 950]", two),                  # one missing, one extra
        ("none", []),                                                                       # right: nothing there
    ]
    path = tmp_path / "hand.jsonl"
    path.write_text("".join(json.dumps({
        "id": f"g{i}", "config": "subset_38", "task": "grounding", "raw_output": raw, "gold": "", "boxes": boxes,
        "gold_label": "polyp"}) + "\n" for i, (raw, boxes) in enumerate(rows)))
    out = tmp_path / "out"
    assert evaluate_main(["--predictions", str(path), "--output_dir", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())["configs"]["subset_38"]
    assert r["task"] == "grounding"
    assert (r["n"], r["correct"], r["unparseable"]) == (6, 3, 1)
    assert r["objects"] == {"reference": 6, "predicted": 5, "matched": 3}  # the unparseable answer predicts none
    assert r["precision"] == 3 / 5 and r["recall"] == 3 / 6
    assert r["mean_iou"] == pytest.approx((1 + 0.5 + 1 / 7 + 0 + (0 + 1)) / 6)
    lo, hi = r["ci95"]
    assert lo < 0.5 < hi
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert [x["correct"] for x in lines] == [True, True, False, False, False, True]
    assert lines[1]["parsed"] == "polyp: [0, 0, 100, 50]" and lines[3]["parsed"] is None


def test_reference_boxes_read_dataset_rows():
    assert reference_boxes([{"label": "polyp", "x1": 1, "y1": 2, "x2": 3, "y2": 4}]) == [_box(1, 2, 3, 4, "polyp")]
