"""Running the jobs of a plan, here or as scripts: launchers, completion markers, idempotence.

A job's folder (``OUT/models/<key>/`` for a training, ``OUT/runs/<name>/`` for an evaluation) is
finished when it holds :data:`DONE_FILE`, written last, with the job's key. On a rerun a finished
job is skipped; a folder without the marker (an interrupted job) is removed and the job is run
again. An evaluation also records the token of its model's marker, so an evaluation of a model
that was trained again is redone too. The same rules hold for the local runner (:func:`run_local`)
and for the shell scripts of an export (:func:`training_script`, :func:`evaluation_script`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from medmat_builder.evaluate.experiments.plan import EvalJob, Plan, TrainingJob
from medmat_builder.evaluate.experiments.spec import ExperimentSpec, SpecError
from medmat_builder.evaluate.experiments.spec_file import dump_spec

DONE_FILE = "medmat_job_done.json"
Log = Callable[[str], Any]
#: What the jobs run, as modules of the installed package (``python -m``, ``accelerate launch -m``,
#: ``torchrun -m``): the code behind training/sft.py, eval/evaluate.py and eval/experiment.py.
TRAIN_MODULE = "medmat_builder.train"
EVALUATE_MODULE = "medmat_builder.evaluate"
EXPERIMENT_MODULE = "medmat_builder.evaluate.experiments"


# --------------------------------------------------------------------------------------------------
# Markers
# --------------------------------------------------------------------------------------------------


def read_marker(folder: str | Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(folder) / DONE_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(folder: str | Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write the completion marker atomically (a crash leaves no half marker)."""
    path = Path(folder) / DONE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return info


def marker_token(model_dir: str | Path, key: str) -> str | None:
    """The token of the finished training ``key`` in ``model_dir`` (None while it has not finished)."""
    marker = read_marker(model_dir)
    return str(marker.get("token")) if marker and marker.get("key") == key else None


def evaluation_finished(run_dir: str | Path, key: str, model: tuple[str | Path, str] | None = None) -> bool:
    """Evaluation ``key`` finished in ``run_dir`` and, when ``model`` = (model_dir, training key) is
    given, finished on that model as it is now (not on an earlier training of it)."""
    marker = read_marker(run_dir)
    if not marker or marker.get("key") != key or not (Path(run_dir) / "results.json").is_file():
        return False
    if model is None:
        return True
    token = marker_token(*model)
    return token is not None and marker.get("model_token") == token


def training_token(job: TrainingJob) -> str | None:
    return marker_token(job.model_dir, job.key)


def evaluation_done(plan: Plan, job: EvalJob) -> bool:
    model = None
    if job.training is not None:
        model = (plan.trainings[job.training].model_dir, job.training)
    return evaluation_finished(job.run_dir, job.key, model)


def start_fresh(folder: Path, log: Log, what: str) -> None:
    if folder.exists():
        log(f"[{what}] unfinished output in {folder}: removed, running again")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def arm_json(plan: Plan, job: EvalJob) -> dict[str, Any]:
    """``arm.json`` of an evaluation run (read by :mod:`medmat_builder.evaluate.report`)."""
    return {**job.meta, "checkpoint": job.model, "targets": job.configs, "eval_key": job.key}


# --------------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """How a job's script is started: ``accelerate launch --config_file ...``, a custom launcher, or Python."""

    words: tuple[str, ...]
    num_machines: int = 1
    num_processes: int = 1
    uses_gpu: bool = False
    port: int = 29500
    config: str | None = None

    @property
    def in_process(self) -> bool:
        """Plain Python without a launcher: the local runner calls the script's main() directly."""
        return self.words == (sys.executable,)

    @property
    def gpus_per_machine(self) -> int:
        return max(1, self.num_processes // max(1, self.num_machines)) if self.uses_gpu else 0

    def command(self, module: str, argv: list[str], *, local: bool = False) -> list[str]:
        """``launcher -m module argv``; ``local``: the launcher's program from this environment first."""
        first = _executable(self.words[0]) if local else self.words[0]
        return [first, *self.words[1:], "-m", module, *argv]


def read_accelerate_config(path: str | Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise SpecError(f"accelerate config {path} not found (shipped: training/accelerate/*.yaml)") from None
    if not isinstance(data, dict):
        raise SpecError(f"accelerate config {path} is not a mapping")
    return data


def _launch(words: list[str], config: str | None) -> Launch:
    if words:
        n = 1
        for flag in ("--num_processes", "--nproc_per_node", "--nproc-per-node"):
            if flag in words[:-1]:
                n = int(words[words.index(flag) + 1])
        return Launch(tuple(words), num_processes=n, uses_gpu=n > 1 or "accelerate" in words[0])
    if config:
        cfg = read_accelerate_config(config)
        uses_gpu = not bool(cfg.get("use_cpu", False))
        return Launch(("accelerate", "launch", "--config_file", config), num_machines=int(cfg.get("num_machines", 1)),
                      num_processes=int(cfg.get("num_processes", 1)), uses_gpu=uses_gpu,
                      port=int(cfg.get("main_process_port", 29500)), config=config)
    return Launch((sys.executable,))


def training_launch(spec: ExperimentSpec) -> Launch:
    return _launch(spec.launcher, spec.accelerate_config)


def evaluation_launch(spec: ExperimentSpec) -> Launch:
    return _launch(spec.eval_launcher, spec.eval_accelerate_config)


def _executable(word: str) -> str:
    """``accelerate`` next to this Python when it is there (the same environment), else from PATH."""
    here = Path(sys.executable).parent / word
    return str(here) if "/" not in word and here.is_file() else word


# --------------------------------------------------------------------------------------------------
# Local execution
# --------------------------------------------------------------------------------------------------


def write_inputs(plan: Plan) -> None:
    """What the jobs read: the resolved spec, the plan, and the mixture files."""
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "spec.yaml").write_text(dump_spec(plan.spec), encoding="utf-8")
    (plan.out / "plan.json").write_text(json.dumps(plan.to_json(), indent=1) + "\n", encoding="utf-8")
    for job in plan.trainings.values():
        if job.mixture is not None and job.mixture_path is not None:
            job.mixture.save(job.mixture_path)


def run_training(plan: Plan, job: TrainingJob, log: Log = print) -> str:
    """Train (unless finished); returns the model's marker token."""
    token = training_token(job)
    if token is not None:
        log(f"[train {job.key}] finished earlier: skipped ({job.model_dir})")
        return token
    start_fresh(job.model_dir, log, f"train {job.key}")
    launch = training_launch(plan.spec)
    log(f"[train {job.key}] {job.description}")
    if launch.in_process:
        from medmat_builder.train import parse_args, train

        train(*parse_args(job.argv()))
    else:
        cmd = launch.command(TRAIN_MODULE, job.argv(), local=True)
        log("[train] " + shlex.join(cmd))
        subprocess.run(cmd, check=True)
    marker = write_marker(job.model_dir, {"job": "train", "key": job.key, "token": f"{time.time_ns()}-{os.getpid()}"})
    return marker["token"]


def run_evaluation(plan: Plan, job: EvalJob, log: Log = print) -> None:
    if evaluation_done(plan, job):
        log(f"[eval {job.key}] finished earlier: skipped ({job.run_dir})")
        return
    token = ""
    if job.training is not None:
        token = training_token(plan.trainings[job.training]) or ""
        if not token:
            raise RuntimeError(f"evaluation {job.key} needs training {job.training}, which has not finished")
    start_fresh(job.run_dir, log, f"eval {job.key}")
    argv = job.argv(plan.spec)
    launch = evaluation_launch(plan.spec)
    log(f"[eval {job.key}] {job.model} on {', '.join(job.configs)}")
    if launch.in_process:
        from medmat_builder.evaluate.cli import main as evaluate_main

        evaluate_main(argv)
    else:
        cmd = launch.command(EVALUATE_MODULE, argv, local=True)
        log("[eval] " + shlex.join(cmd))
        subprocess.run(cmd, check=True)
    (job.run_dir / "arm.json").write_text(json.dumps(arm_json(plan, job), indent=2) + "\n", encoding="utf-8")
    write_marker(job.run_dir, {"job": "eval", "key": job.key, "model_token": token})


def ensure_backbone(plan: Plan, log: Log = print) -> None:
    """Create the tiny backbone when the spec asks for one and it is missing (demo/CI only)."""
    spec = plan.spec
    if spec.tiny_model_arch and not Path(plan.backbone, "config.json").is_file():
        log(f"[setup] creating tiny {spec.tiny_model_arch} at {plan.backbone}")
        from medmat_builder.tiny_models import create_tiny_model

        create_tiny_model(spec.tiny_model_arch, plan.backbone)  # type: ignore[arg-type]


def run_local(plan: Plan, log: Log = print) -> None:
    """Run every job here, in order: the untrained evaluations, then each training and its evaluations."""
    write_inputs(plan)
    ensure_backbone(plan, log)
    for job in plan.evals.values():
        if job.training is None:
            run_evaluation(plan, job, log)
    for tkey, training in plan.trainings.items():
        run_training(plan, training, log)
        for job in plan.evals.values():
            if job.training == tkey:
                run_evaluation(plan, job, log)


# --------------------------------------------------------------------------------------------------
# Job scripts (exports)
# --------------------------------------------------------------------------------------------------


def _q(words: list[str] | tuple[str, ...]) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


def _launch_lines(launch: Launch, module: str, argv: list[str], what: str) -> list[str]:
    """Shell lines that run ``-m module argv`` with ``launch`` (srun over the nodes of a multi-node job)."""
    tail = ["-m", module, *argv]
    if launch.num_machines <= 1:
        return [_q([*launch.words, *tail])]
    words = [*launch.words, "--num_machines", str(launch.num_machines), "--num_processes", str(launch.num_processes)]
    rendezvous = f'--main_process_ip "$MAIN_PROCESS_IP" --main_process_port {launch.port}'
    return [
        f'launch() {{ {_q(words)} --machine_rank "$1" {rendezvous} {_q(tail)}; }}',
        'if [ -n "${SLURM_JOB_ID:-}" ]; then',
        '  MAIN_PROCESS_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        "  export MAIN_PROCESS_IP; export -f launch",
        f"  srun --nodes={launch.num_machines} --ntasks-per-node=1 bash -c 'launch \"$SLURM_NODEID\"'",
        "else",
        f'  : "${{MAIN_PROCESS_IP:?{what} runs on {launch.num_machines} machines: start this script on each with '
        f'MACHINE_RANK=0..{launch.num_machines - 1} and MAIN_PROCESS_IP=<address of rank 0>}}"',
        '  launch "${MACHINE_RANK:?set MACHINE_RANK}"',
        "fi",
    ]


def _header(plan: Plan, title: str, notes: list[str], setup: list[str]) -> list[str]:
    return [
        "#!/usr/bin/env bash",
        f"# medmat experiment {plan.spec.name!r}: {title}",
        *[f"#   {n}" for n in notes],
        "# Idempotent: a finished job (completion marker with this key, written last) is skipped; an",
        "# unfinished folder is removed and the job runs again.",
        "set -euo pipefail",
        *setup,
        f"cd {shlex.quote(str(Path.cwd()))}",
    ]


def default_setup() -> list[str]:
    """Put this environment's executables (python, accelerate) first on PATH inside the jobs."""
    return [f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"']


def training_script(plan: Plan, job: TrainingJob, setup: list[str]) -> str:
    launch = training_launch(plan.spec)
    k = job.key
    multi = launch.num_machines > 1
    rank0 = '[ "${MACHINE_RANK:-0}" = 0 ]' if multi else "true"
    lines = _header(plan, f"training {k}", [f"data: {job.description}", f"used by: {', '.join(job.uses)}"], setup)
    lines += [
        f"MODEL={shlex.quote(str(job.model_dir))}",
        f'DONE="$MODEL/{DONE_FILE}"',
        f"if [ -f \"$DONE\" ] && grep -q '\"key\": \"{k}\"' \"$DONE\"; then",
        f'  echo "[train {k}] finished earlier: skipped"; exit 0',
        "fi",
        f"if {rank0}; then",
        f'  if [ -e "$MODEL" ]; then echo "[train {k}] unfinished output in $MODEL: removed, training again"; '
        'rm -rf -- "$MODEL"; fi',
        '  mkdir -p "$MODEL"',
        "fi",
        *_launch_lines(launch, TRAIN_MODULE, job.argv(), f"training {k}"),
        f"if {rank0}; then",
        f"  printf '{{\"job\": \"train\", \"key\": \"{k}\", \"token\": \"%s\"}}\\n' \"$(date +%s%N)-$$\" "
        '> "$DONE.tmp"',
        '  mv -f "$DONE.tmp" "$DONE"',
        "fi",
        f'echo "[train {k}] done"',
    ]
    return "\n".join(lines) + "\n"


def evaluation_script(plan: Plan, job: EvalJob, setup: list[str]) -> str:
    launch = evaluation_launch(plan.spec)
    k = job.key
    notes = [f"model: {job.model}", f"configs: {' '.join(job.configs)}", f"used by: {', '.join(job.uses[:8])}"
             + (f" (+{len(job.uses) - 8} more)" if len(job.uses) > 8 else "")]
    lines = _header(plan, f"evaluation {k}", notes, setup)
    lines += [f"RUN={shlex.quote(str(job.run_dir))}", f'DONE="$RUN/{DONE_FILE}"']
    if job.training is not None:
        t = job.training
        model_done = shlex.quote(str(plan.trainings[t].model_dir / DONE_FILE))
        lines += [
            f"MODEL_DONE={model_done}",
            f"if [ ! -f \"$MODEL_DONE\" ] || ! grep -q '\"key\": \"{t}\"' \"$MODEL_DONE\"; then",
            f'  echo "[eval {k}] its model (training {t}) has not finished: run that first" >&2; exit 1',
            "fi",
            "TOKEN=$(sed -n 's/.*\"token\": \"\\([^\"]*\\)\".*/\\1/p' \"$MODEL_DONE\")",
        ]
    else:
        lines.append('TOKEN=""')
    lines += [
        f"if [ -f \"$DONE\" ] && [ -f \"$RUN/results.json\" ] && grep -q '\"key\": \"{k}\"' \"$DONE\" "
        '&& grep -qF "\\"model_token\\": \\"$TOKEN\\"" "$DONE"; then',
        f'  echo "[eval {k}] finished earlier: skipped"; exit 0',
        "fi",
        f'if [ -e "$RUN" ]; then echo "[eval {k}] unfinished output in $RUN: removed, evaluating again"; '
        'rm -rf -- "$RUN"; fi',
        'mkdir -p "$RUN"',
        *_launch_lines(launch, EVALUATE_MODULE, job.argv(plan.spec), f"evaluation {k}"),
        "cat > \"$RUN/arm.json\" <<'MEDMAT_ARM_JSON'",
        json.dumps(arm_json(plan, job), indent=2),
        "MEDMAT_ARM_JSON",
        f"printf '{{\"job\": \"eval\", \"key\": \"{k}\", \"model_token\": \"%s\"}}\\n' \"$TOKEN\" > \"$DONE.tmp\"",
        'mv -f "$DONE.tmp" "$DONE"',
        f'echo "[eval {k}] done"',
    ]
    return "\n".join(lines) + "\n"


def collect_command(plan: Plan) -> list[str]:
    """The report step: collect whatever has finished and list what is missing."""
    return [sys.executable, "-m", EXPERIMENT_MODULE, str(plan.out / "spec.yaml"),
            "--output_dir", str(plan.out), "--collect"]


def report_script(plan: Plan, setup: list[str]) -> str:
    lines = _header(plan, "report", ["collects every finished evaluation into table.md / table.csv / volume "
                                     "plots and lists what is missing (missing.json)"], setup)
    lines.append(_q(collect_command(plan)))
    return "\n".join(lines) + "\n"
