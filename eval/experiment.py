"""Run a compositional-generalization experiment from one spec: planner -> training -> evaluation per arm.

::

    python eval/experiment.py spec.yaml [--output_dir runs/cg] [--dry_run]

The spec (YAML) names a backbone, the data, the target(s) and the arms; see docs/eval.md. Example::

    name: micro-cg
    backbone: outputs/tiny-llava
    tiny_model_arch: llava          # create the tiny backbone if it is missing (demo/CI only)
    dataset: ./medmat
    targets: [subset_28]
    recipe: training/recipes/tiny_cpu.yaml
    train_args: {max_steps: 10}
    eval: {mode: likelihood, batch_size: 8}
    arms:
      Baseline: {}                               # the backbone, untrained
      Baseline+: {mixture: baseline-plus}        # planner name; ':TARGET' is appended
      Trained: {mixture: related}
      Old run: {checkpoint: runs/old/{target}}   # an existing checkpoint
    volume:                                      # Figure 5/6-style curves
      - name: rq1
        vary: combination                        # or: target (RQ2; fixed: N combination samples, default 3000)
        sizes: [0, 750, 1500, 2250, 3000]
        series: {Related: {mixture: related}, Unrelated: {mixture: unrelated}}

Each evaluated run gets a folder ``OUT/runs/<slug>/`` with ``arm.json``, ``results.json`` and
``predictions.jsonl``; trained models go to ``OUT/models/<hash of the training command>/`` so that
identical trainings (e.g. a Trained arm that is also a volume point) run once, and an interrupted
experiment resumes where it stopped. The table and plots are rendered by :mod:`eval.report`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    if sys.path and Path(sys.path[0]).resolve() == _ROOT / "eval":
        sys.path.pop(0)
    sys.path.insert(0, str(_ROOT))

from eval import report  # noqa: E402
from medmat_builder.planner import RQ2_COMBINATION  # noqa: E402

SFT = _ROOT / "training" / "sft.py"
EVALUATE = _ROOT / "eval" / "evaluate.py"
DISCLAIMER = (
    "Note: these numbers come from tiny randomly initialised models trained for a few steps on "
    "synthetic images; they exercise the pipeline and mean nothing medically."
)


class ArmSpec(BaseModel):
    """How one arm gets its model: an existing checkpoint, a planner mixture, configs, or nothing (backbone)."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(default=None, description="existing model; '{target}' is substituted")
    mixture: str | None = Field(default=None, description="planner rule (related), name (related:subset_28) or file")
    train_configs: list[str] | None = None
    budget: int | None = Field(default=None, description="total training samples (planner budget)")
    target_samples: int = 0
    train_args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> "ArmSpec":
        given = [k for k in ("checkpoint", "mixture", "train_configs") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"an arm takes one of checkpoint / mixture / train_configs, got {given}")
        return self

    @property
    def trains(self) -> bool:
        return bool(self.mixture or self.train_configs)


class VolumeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    vary: Literal["combination", "target"] = "combination"
    sizes: list[int]
    fixed: int = Field(default=RQ2_COMBINATION, ge=0,
                       description="combination samples when vary=target (default: the planner's RQ2 volume)")
    series: dict[str, ArmSpec]


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["generate", "likelihood"] = "likelihood"
    batch_size: int = 8
    limit: int | None = None
    max_new_tokens: int = 16
    split: str = "test"
    circular: bool = Field(default=False, description="ask each item once per rotation of its options (evaluate.py --circular)")


class ExperimentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "experiment"
    backbone: str
    tiny_model_arch: str | None = None
    dataset: str
    targets: list[str]
    recipe: str | None = None
    train_args: dict[str, Any] = Field(default_factory=dict)
    launcher: list[str] = Field(default_factory=list, description="e.g. [accelerate, launch, --num_processes, '8']")
    eval_launcher: list[str] = Field(default_factory=list, description="empty: evaluate in this process")
    seed: int = 42
    alpha: float = Field(default=0.05, gt=0, lt=1, description="significance level of the paired tests that decide success")
    eval: EvalSpec = Field(default_factory=EvalSpec)
    arms: dict[str, ArmSpec]
    volume: list[VolumeSpec] = Field(default_factory=list)
    output_dir: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _target_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "target" in data:
            data = dict(data)
            t = data.pop("target")
            data.setdefault("targets", [t] if isinstance(t, str) else list(t))
        return data


def load_spec(path: str | Path) -> ExperimentSpec:
    """Parse and validate a spec file; relative paths stay relative to the working directory."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: an experiment spec is a YAML mapping (backbone, dataset, targets, arms)")
    return ExperimentSpec.model_validate(data)


def slug(text: str) -> str:
    s = text.replace("+", "plus")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-").lower() or "run"


def _flags(args: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for k, v in args.items():
        out.append(f"--{k}")
        if isinstance(v, (list, tuple)):
            out.extend(str(x) for x in v)
        else:
            out.append(str(v).lower() if isinstance(v, bool) else str(v))
    return out


class Experiment:
    """Executes an :class:`ExperimentSpec` into ``out_dir`` (see module docstring)."""

    def __init__(self, spec: ExperimentSpec, out_dir: str | Path, dry_run: bool = False, log=print):
        self.spec, self.out, self.dry_run, self.log = spec, Path(out_dir), dry_run, log
        self._evaluated: dict[tuple[str, tuple[str, ...]], Path] = {}

    # ---- planning ---------------------------------------------------------------------------------
    def _mixture_file(self, arm: ArmSpec, target: str, budget: int | None, target_samples: int) -> tuple[list[str], str]:
        """Training-data flags for sft.py and a human description of the combination."""
        name = arm.mixture
        if arm.train_configs and budget is None and not target_samples:
            flags = ["--train_configs", *arm.train_configs, "--target", target]  # the target's test split stays out
            return flags, " + ".join(arm.train_configs)
        if arm.train_configs:
            name = f"configs:{target}:{'+'.join(arm.train_configs)}"
        assert name is not None
        if ":" not in name and not Path(name).exists():
            name = f"{name}:{target}"
        from medmat_builder.planner import caps_from_build_report, resolve_mixture

        options: dict[str, Any] = {"seed": self.spec.seed}
        if budget is not None:
            options["budget"] = budget
        if target_samples:
            options["target_samples"] = target_samples
        ledger = Path(self.spec.dataset) / "build_report.json"
        if ledger.is_file():
            options["caps"] = caps_from_build_report(ledger)
        if Path(name).exists():
            mix = resolve_mixture(name)
        else:
            mix = resolve_mixture(name, **options)
        key = hashlib.sha256(mix.to_yaml().encode()).hexdigest()[:12]
        path = self.out / "mixtures" / f"{slug(name)}-{key}.yaml"
        if not self.dry_run:
            mix.save(path)
        parts = ", ".join(f"{e.config}:{e.samples}" for e in mix.configs)
        return ["--mixture", str(path)], f"{name} ({parts})"

    def _train(self, arm: ArmSpec, target: str, budget: int | None = None, target_samples: int = 0) -> tuple[str, str]:
        """Train (or reuse) a model for ``arm``; returns (checkpoint path, combination text)."""
        budget = budget if budget is not None else arm.budget
        target_samples = target_samples or arm.target_samples
        data_flags, combination = self._mixture_file(arm, target, budget, target_samples)
        train_args = {**self.spec.train_args, **arm.train_args}
        cmd_tail = [
            *(["--config", self.spec.recipe] if self.spec.recipe else []),
            "--model_name_or_path", self.spec.backbone, "--dataset_name", self.spec.dataset,
            *data_flags, "--seed", str(self.spec.seed), *_flags(train_args),
        ]
        key = hashlib.sha256(json.dumps(cmd_tail).encode()).hexdigest()[:12]
        model_dir = self.out / "models" / key
        cmd = [*(self.spec.launcher or [sys.executable]), str(SFT), *cmd_tail, "--output_dir", str(model_dir)]
        if (model_dir / "config.json").is_file():
            self.log(f"[train] reuse {model_dir}")
        else:
            self.log("[train] " + " ".join(cmd))
            if not self.dry_run:
                model_dir.mkdir(parents=True, exist_ok=True)
                (model_dir.parent / f"{key}.cmd.json").write_text(json.dumps(cmd, indent=1) + "\n")
                subprocess.run(cmd, check=True, cwd=_ROOT)
        return str(model_dir), combination

    def _checkpoint(self, arm: ArmSpec, target: str, **volume: int) -> tuple[str, str]:
        if arm.checkpoint:
            return arm.checkpoint.replace("{target}", target), f"checkpoint {arm.checkpoint}"
        if arm.trains:
            return self._train(arm, target, **volume)
        return self.spec.backbone, ""

    # ---- evaluation -------------------------------------------------------------------------------
    def _evaluate(self, run_dir: Path, checkpoint: str, targets: list[str], meta: dict[str, Any]) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        key = (checkpoint, tuple(targets))
        e = self.spec.eval
        argv = ["--model_name_or_path", checkpoint, "--dataset_name", self.spec.dataset, "--configs", *targets,
                "--mode", e.mode, "--batch_size", str(e.batch_size), "--max_new_tokens", str(e.max_new_tokens),
                "--split", e.split, "--output_dir", str(run_dir)]
        if e.limit is not None:
            argv += ["--limit", str(e.limit)]
        if e.circular:
            argv.append("--circular")
        done = (run_dir / "results.json").is_file() and (run_dir / "arm.json").is_file() \
            and json.loads((run_dir / "arm.json").read_text()).get("checkpoint") == checkpoint
        if done:
            self.log(f"[eval] reuse {run_dir}")
        elif key in self._evaluated:
            self.log(f"[eval] same model and configs as {self._evaluated[key]}: copying its results")
            if not self.dry_run:
                for f in ("results.json", "predictions.jsonl"):
                    shutil.copyfile(self._evaluated[key] / f, run_dir / f)
        else:
            self.log("[eval] evaluate.py " + " ".join(argv))
            if not self.dry_run:
                if self.spec.eval_launcher:
                    subprocess.run([*self.spec.eval_launcher, str(EVALUATE), *argv], check=True, cwd=_ROOT)
                else:
                    from eval.evaluate import main as evaluate_main

                    evaluate_main(argv)
        self._evaluated.setdefault(key, run_dir)
        if not self.dry_run:
            (run_dir / "arm.json").write_text(json.dumps({**meta, "checkpoint": checkpoint, "targets": targets},
                                                         indent=2) + "\n")

    # ---- the whole experiment ---------------------------------------------------------------------
    def ensure_backbone(self) -> None:
        if self.spec.tiny_model_arch and not Path(self.spec.backbone, "config.json").is_file():
            self.log(f"[setup] creating tiny {self.spec.tiny_model_arch} at {self.spec.backbone}")
            if not self.dry_run:
                from medmat_builder.tiny_models import create_tiny_model

                create_tiny_model(self.spec.tiny_model_arch, self.spec.backbone)  # type: ignore[arg-type]

    def run(self) -> dict[str, Any]:
        """Run every arm and volume point; render the table and plots; return :func:`eval.report.render`'s dict."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "spec.yaml").write_text(yaml.safe_dump(self.spec.model_dump(mode="json"), sort_keys=False))
        self.ensure_backbone()
        runs = self.out / "runs"
        for arm_name, arm in self.spec.arms.items():
            if not arm.trains and not arm.checkpoint:  # the backbone: one evaluation for all targets
                meta = {"arm": arm_name, "combination": ""}
                self._evaluate(runs / slug(arm_name), self.spec.backbone, list(self.spec.targets), meta)
                continue
            for target in self.spec.targets:
                ckpt, combination = self._checkpoint(arm, target)
                meta = {"arm": arm_name, "combination": combination}
                self._evaluate(runs / f"{slug(arm_name)}__{target}", ckpt, [target], meta)
        for vol in self.spec.volume:
            for series, arm in vol.series.items():
                for target in self.spec.targets:
                    for size in vol.sizes:
                        if vol.vary == "combination":
                            ckpt, combination = (self.spec.backbone, "") if size == 0 else \
                                self._checkpoint(arm, target, budget=size)
                        else:
                            ckpt, combination = self._checkpoint(arm, target, budget=vol.fixed, target_samples=size)
                        meta = {"arm": series, "series": series, "figure": f"{vol.name}-{target}" if
                                len(self.spec.targets) > 1 else vol.name, "volume": size, "combination": combination,
                                "xlabel": f"{vol.vary} samples"}
                        self._evaluate(runs / f"{slug(vol.name)}__{slug(series)}__{target}__{size}", ckpt, [target], meta)
        if self.dry_run:
            return {"markdown": "", "plots": []}
        order = list(self.spec.arms)
        return report.render(self.out, arm_order=order)


def is_tiny(path: str) -> bool:
    from medmat_builder.tiny_models import is_tiny_model

    return is_tiny_model(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Planner -> training -> evaluation per arm; Table-3 table and volume plots.")
    p.add_argument("spec", help="experiment spec YAML")
    p.add_argument("--output_dir", help="default: the spec's output_dir, else runs/<name>")
    p.add_argument("--dry_run", action="store_true", help="print the training and evaluation commands only")
    args = p.parse_args(argv)
    spec = load_spec(args.spec)
    out = args.output_dir or spec.output_dir or f"runs/{slug(spec.name)}"
    written = Experiment(spec, out, dry_run=args.dry_run).run()
    if written["markdown"]:
        print(written["markdown"], end="")
    for png in written["plots"]:
        print(f"wrote {png}")
    if is_tiny(spec.backbone):
        print(DISCLAIMER)
    return 0


if __name__ == "__main__":
    from medmat_builder.cli import run_script

    run_script(main)
