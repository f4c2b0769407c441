"""`medmat export-task` (issue 18): lmms-eval tasks for classification and grounding configs.

The hooks are checked against eval/evaluate.py's own scoring of the same answers; with lmms-eval
installed (scripts/setup.sh installs it without its heavy extras), lmms-eval loads the exported tasks,
scores hand-written answers through its own process_results/aggregation, and runs a tiny random
LLaVA on a few items offline (``limit``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from medmat_builder.evaluate.cli import main as evaluate_main
from medmat_builder.evaluate.testing import make_tiny_export, tiny_model
from medmat_builder.cli import main as medmat

REPO = Path(__file__).resolve().parents[1]

N_TEST = 4
# lmms-eval and the few packages that loading and scoring a task import (scripts/setup.sh installs them)
HAS_LMMS = all(importlib.util.find_spec(m) is not None for m in ("lmms_eval", "loguru", "evaluate", "sacrebleu",
                                                                   "tenacity", "pytz"))


class _TagLoader(yaml.SafeLoader):
    """Reads lmms-eval's ``!function module.name`` tags as the text ``module.name``."""


_TagLoader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    name = f"lmms-export-{uuid.uuid4().hex[:10]}"
    return make_tiny_export(tmp_path_factory.mktemp("export") / name, ["subset_28"], n_train=2, n_test=N_TEST,
                            grounding_configs=["subset_38"])


@pytest.fixture(scope="module")
def tasks(export, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tasks") / "lmms"
    assert medmat(["export-task", "subset_28", "subset_38", "--dataset", str(export), "--out", str(out)]) == 0
    return out


def _answers(export: Path) -> dict[str, list[tuple[dict, str]]]:
    """Per config: (row, hand-written answer) pairs mixing right, wrong and unparseable answers."""
    import pyarrow.parquet as pq

    out = {}
    for config in ("subset_28", "subset_38"):
        rows = pq.read_table(export / config / "test-00000-of-00001.parquet").to_pylist()
        answers = []
        for i, row in enumerate(rows):
            if config == "subset_28":
                wrong = "A" if row["answer"] != "A" else "B"
                answers.append([row["answer"], f"Answer: {wrong}", "no idea", f"({row['answer']})"][i % 4])
            else:
                b = row["boxes"][0]
                answers.append([row["answer"], f"Lesion: [{b['x2']}, {b['y2']}, 1000, 1000]", "somewhere",
                                row["answer"]][i % 4])
        out[config] = list(zip(rows, answers))
    return out


def _evaluate_py(answers: dict[str, list[tuple[dict, str]]], tmp_path: Path) -> dict:
    """eval/evaluate.py's scores of the same answers (re-scoring a hand-written predictions file)."""
    lines = []
    for config, pairs in answers.items():
        for row, answer in pairs:
            lines.append({"id": row["id"], "config": config, "raw_output": answer, "gold": row["answer"],
                          "options": row["options"], "task": "choice" if row["options"] else "grounding",
                          "boxes": row["boxes"] or None})
    path = tmp_path / "hand.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert evaluate_main(["--predictions", str(path), "--output_dir", str(tmp_path / "scored")]) == 0
    return json.loads((tmp_path / "scored" / "results.json").read_text())["configs"]


def test_export_writes_one_task_per_config_and_the_parsers(tasks, export):
    assert sorted(p.name for p in tasks.iterdir()) == [
        "medmat_grounding.py", "medmat_hooks.py", "medmat_parsing.py", "medmat_subset_28.yaml", "medmat_subset_38.yaml"]
    for copy, src in (("medmat_parsing.py", "parsing.py"), ("medmat_grounding.py", "grounding.py"),
                      ("medmat_hooks.py", "lmms_hooks.py")):
        assert (tasks / copy).read_text() == (REPO / "medmat_builder" / "evaluate" / src).read_text()
    choice = yaml.load((tasks / "medmat_subset_28.yaml").read_text(), Loader=_TagLoader)
    assert (choice["task"], choice["dataset_path"], choice["dataset_name"]) == ("medmat_subset_28", str(export), "subset_28")
    assert choice["process_results"] == "!function medmat_hooks.process_choice"
    assert [m["metric"] for m in choice["metric_list"]] == ["accuracy", "unparseable"]
    assert choice["generation_kwargs"]["max_new_tokens"] == 16
    grounding = yaml.load((tasks / "medmat_subset_38.yaml").read_text(), Loader=_TagLoader)
    assert grounding["process_results"] == "!function medmat_hooks.process_grounding"
    assert [m["metric"] for m in grounding["metric_list"]] == ["accuracy_iou50", "mean_iou", "precision", "recall",
                                                              "unparseable"]
    assert grounding["generation_kwargs"]["max_new_tokens"] == 128


def test_export_refuses_unknown_configs(tmp_path, capsys):
    assert medmat(["export-task", "subset_99", "--dataset", "x", "--out", str(tmp_path / "t")]) == 2  # an unknown name is a usage error
    assert "unknown config 'subset_99'" in capsys.readouterr().err


def test_hooks_loaded_from_the_task_folder_score_like_evaluate(tasks, export, tmp_path):
    """The hooks as lmms-eval loads them (a file beside the YAML, no package) agree with evaluate.py."""
    spec = importlib.util.spec_from_file_location("medmat_hooks_probe", tasks / "medmat_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    answers = _answers(export)
    ours = _evaluate_py(answers, tmp_path)
    choice = [hooks.process_choice(row, [a]) for row, a in answers["subset_28"]]
    assert sum(c["accuracy"] for c in choice) / N_TEST == ours["subset_28"]["accuracy"] == 0.5
    assert hooks.total([c["unparseable"] for c in choice]) == ours["subset_28"]["unparseable"] == 1
    grounding = [hooks.process_grounding(row, [a]) for row, a in answers["subset_38"]]
    g = ours["subset_38"]
    assert sum(x["accuracy_iou50"] for x in grounding) / N_TEST == g["accuracy"] == 0.5
    assert hooks.ratio([x["mean_iou"] for x in grounding]) == pytest.approx(g["mean_iou"])
    assert hooks.ratio([x["precision"] for x in grounding]) == pytest.approx(g["precision"])
    assert hooks.ratio([x["recall"] for x in grounding]) == pytest.approx(g["recall"])
    assert hooks.doc_to_text(answers["subset_28"][0][0]) == answers["subset_28"][0][0]["question"]
    assert hooks.doc_to_target(answers["subset_38"][0][0]) == answers["subset_38"][0][0]["answer"]


_RUNNER = """
import importlib.util, json, sys
import lmms_eval.evaluator as ev
if importlib.util.find_spec("filelock._api") is None:  # lmms-eval 0.7.3 patches filelock<4 internals
    ev._enable_reentrant_filelocks._patched = True
from lmms_eval.tasks import TaskManager
tasks, model, out = sys.argv[1:4]
tm = TaskManager(include_path=tasks, include_defaults=False)
res = ev.simple_evaluate(model="llava_hf", model_args=f"pretrained={model},device=cpu,device_map=cpu,dtype=float32",
                         tasks=["medmat_subset_28", "medmat_subset_38"], limit=3, batch_size=1, task_manager=tm,
                         log_samples=True, bootstrap_iters=0, gen_kwargs="max_new_tokens=8")
samples = {t: [{"doc_id": s["doc_id"], "resps": s["filtered_resps"]} for s in v] for t, v in res["samples"].items()}
json.dump({"results": res["results"], "samples": samples}, open(out, "w"), default=str)
"""


@pytest.mark.skipif(not HAS_LMMS, reason="lmms-eval is not installed (scripts/setup.sh installs it)")
def test_lmms_eval_loads_the_tasks_and_aggregates_like_evaluate(tasks, export, tmp_path, monkeypatch):
    """lmms-eval's own task loading, process_results and aggregation on hand-written answers."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from lmms_eval.tasks import TaskManager, get_task_dict

    task_dict = get_task_dict(["medmat_subset_28", "medmat_subset_38"],
                              TaskManager(include_path=str(tasks), include_defaults=False))
    answers = _answers(export)
    ours = _evaluate_py(answers, tmp_path)
    for name, config, metric in (("medmat_subset_28", "subset_28", "accuracy"),
                                 ("medmat_subset_38", "subset_38", "accuracy_iou50")):
        task = task_dict[name]
        docs = list(task.test_docs())
        assert [d["id"] for d in docs] == [row["id"] for row, _ in answers[config]]
        assert task.doc_to_text(docs[0]) == docs[0]["question"] and len(task.doc_to_visual(docs[0])) == 1
        per_doc = [task.process_results(d, [a]) for d, (_, a) in zip(docs, answers[config])]
        agg = task.aggregation()
        for key in per_doc[0]:
            got = agg[key]([x[key] for x in per_doc])
            want = {"accuracy": ours[config]["accuracy"], "accuracy_iou50": ours[config]["accuracy"]}.get(
                key, ours[config].get(key))
            assert got == pytest.approx(want), (config, key)
        assert agg[metric]([x[metric] for x in per_doc]) == 0.5


@pytest.mark.skipif(not HAS_LMMS, reason="lmms-eval is not installed (scripts/setup.sh installs it)")
@pytest.mark.skipif(importlib.util.find_spec("decord") is None, reason="lmms-eval's llava_hf wrapper imports decord")
def test_lmms_eval_runs_a_tiny_model_on_the_exported_tasks(tasks, tmp_path):
    """lmms-eval's llava_hf wrapper, offline, 3 items per task; its scores equal ours on the same answers."""
    model = tiny_model(tmp_path / "llava")
    out = tmp_path / "lmms.json"
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf"), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _RUNNER, str(tasks), str(model), str(out)], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    from medmat_builder.evaluate.grounding import match_boxes, parse_boxes, reference_boxes
    from medmat_builder.evaluate.parsing import parse_letter

    import pyarrow.parquet as pq

    export = Path(yaml.load((tasks / "medmat_subset_28.yaml").read_text(), Loader=_TagLoader)["dataset_path"])
    for name, config in (("medmat_subset_28", "subset_28"), ("medmat_subset_38", "subset_38")):
        rows = pq.read_table(export / config / "test-00000-of-00001.parquet").to_pylist()
        samples = got["samples"][name]
        assert sorted(s["doc_id"] for s in samples) == [0, 1, 2]  # --limit 3
        right = []
        for s in samples:
            row, text = rows[s["doc_id"]], s["resps"][0] if isinstance(s["resps"], list) else s["resps"]
            if config == "subset_28":
                right.append(parse_letter(text, row["options"]) == row["answer"])
            else:
                read = parse_boxes(text)
                right.append(read is not None and match_boxes(read[1], reference_boxes(row["boxes"])).correct)
        metric = "accuracy,none" if config == "subset_28" else "accuracy_iou50,none"
        assert got["results"][name][metric] == pytest.approx(sum(right) / 3)
        assert "unparseable,none" in got["results"][name]
