"""An experiment as jobs for a scheduler: a Slurm array job, or a plain list of commands.

Both exports write the same job scripts, one per distinct training and per evaluation
(``OUT/jobs/train_<key>.sh``, ``OUT/jobs/eval_<key>.sh``, ``OUT/jobs/report.sh``; see
:mod:`.jobs` for what makes them idempotent), plus what the jobs read
(``OUT/spec.yaml``, ``OUT/plan.json``, ``OUT/mixtures/``).

``slurm`` adds ``OUT/slurm/``: ``train.sbatch`` (an array, one task per distinct training),
``eval_trained.sbatch`` (an array in the same order, task i evaluating the model of training task i,
submitted with ``--dependency=aftercorr`` on the training array), ``eval_untrained.sbatch`` (the
backbone and existing checkpoints, no dependency), ``report.sbatch`` (after all evaluations, with
``afterany`` so that it also runs when some failed: it collects what finished and lists the rest),
and ``submit.sh`` that submits the four in that order. Evaluation tasks whose training failed are
cancelled by Slurm (``--kill-on-invalid-dep=yes``) instead of waiting forever.

``commands`` adds ``OUT/commands.txt``: one command per line, trainings first, each evaluation after
its training, the report last; run them in that order with anything that runs shell lines.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medmat_builder.evaluate.experiments.jobs import (
    default_setup,
    evaluation_launch,
    evaluation_script,
    report_script,
    training_launch,
    training_script,
    write_inputs,
)
from medmat_builder.evaluate.experiments.plan import Plan

EXPORTS = ("slurm", "commands")


@dataclass
class Exported:
    files: list[Path] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    train_tasks: int = 0
    eval_trained_tasks: int = 0
    eval_untrained_tasks: int = 0


def write_job_scripts(plan: Plan, setup: Sequence[str] | None = None) -> tuple[dict[str, Path], dict[str, Path], Path]:
    """Every job's script under OUT/jobs/ (trainings, evaluations, report)."""
    setup = list(default_setup() if setup is None else setup)
    write_inputs(plan)
    folder = plan.out / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    trains: dict[str, Path] = {}
    for key, job in plan.trainings.items():
        path = folder / f"train_{key}.sh"
        path.write_text(training_script(plan, job, setup), encoding="utf-8")
        path.chmod(0o755)
        trains[key] = path
    evals: dict[str, Path] = {}
    for key, job in plan.evals.items():
        path = folder / f"eval_{key}.sh"
        path.write_text(evaluation_script(plan, job, setup), encoding="utf-8")
        path.chmod(0o755)
        evals[key] = path
    report = folder / "report.sh"
    report.write_text(report_script(plan, setup), encoding="utf-8")
    report.chmod(0o755)
    return trains, evals, report


def _ordered(plan: Plan) -> tuple[list[str], list[str], list[str]]:
    """(training keys, the evaluation of each training in the same order, untrained evaluation keys)."""
    trains = list(plan.trainings)
    by_training = {e.training: k for k, e in plan.evals.items() if e.training is not None}
    return trains, [by_training[t] for t in trains], [k for k, e in plan.evals.items() if e.training is None]


def export_commands(plan: Plan, setup: Sequence[str] | None = None) -> Exported:
    trains, evals, report = write_job_scripts(plan, setup)
    t_keys, e_keys, u_keys = _ordered(plan)
    commands = [f"bash {shlex.quote(str(evals[k]))}" for k in u_keys]
    for t, e in zip(t_keys, e_keys):
        commands += [f"bash {shlex.quote(str(trains[t]))}", f"bash {shlex.quote(str(evals[e]))}"]
    commands.append(f"bash {shlex.quote(str(report))}")
    path = plan.out / "commands.txt"
    path.write_text("\n".join(commands) + "\n", encoding="utf-8")
    return Exported(files=[path, *trains.values(), *evals.values(), report], commands=commands,
                    train_tasks=len(t_keys), eval_trained_tasks=len(e_keys), eval_untrained_tasks=len(u_keys))


def _sbatch(name: str, logs: Path, resources: list[str], options: Sequence[str], body: list[str],
            array: int | None = None) -> str:
    lines = ["#!/usr/bin/env bash", f"#SBATCH --job-name={name}"]
    if array is not None:
        lines.append(f"#SBATCH --array=0-{array - 1}")
        lines.append(f"#SBATCH --output={logs}/{name}_%A_%a.out")
    else:
        lines.append(f"#SBATCH --output={logs}/{name}_%j.out")
    lines += [f"#SBATCH {r}" for r in resources]
    lines += [f"#SBATCH {o}" for o in options]
    lines += ["set -euo pipefail", *body]
    return "\n".join(lines) + "\n"


def _array_body(scripts: list[Path]) -> list[str]:
    return ["JOBS=(", *[f"  {shlex.quote(str(p))}" for p in scripts], ")",
            'bash "${JOBS[$SLURM_ARRAY_TASK_ID]}"']


def _resources(nodes: int, gpus_per_node: int) -> list[str]:
    out = [f"--nodes={nodes}", "--ntasks-per-node=1"]
    if gpus_per_node:
        out.append(f"--gpus-per-node={gpus_per_node}")
    return out


def export_slurm(plan: Plan, sbatch_options: Sequence[str] = (), setup: Sequence[str] | None = None) -> Exported:
    trains, evals, report = write_job_scripts(plan, setup)
    t_keys, e_keys, u_keys = _ordered(plan)
    folder = plan.out / "slurm"
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    name = f"medmat-{plan.spec.name}"
    tl, el = training_launch(plan.spec), evaluation_launch(plan.spec)
    files: list[Path] = []

    def write(fname: str, text: str) -> Path:
        path = folder / fname
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)
        files.append(path)
        return path

    submit = ["#!/usr/bin/env bash",
              f"# Submit experiment {plan.spec.name!r}: {len(t_keys)} trainings (one array task each), their "
              f"{len(e_keys)} evaluations (task i after training task i), {len(u_keys)} evaluation(s) of untrained "
              "models, then the report.",
              "# Rerunning is safe: finished jobs are skipped (see OUT/jobs/*.sh).",
              "set -euo pipefail", 'cd "$(dirname "$0")"', "after=()"]
    if t_keys:
        write("train.sbatch", _sbatch(f"{name}-train", logs, _resources(tl.num_machines, tl.gpus_per_machine),
                                      sbatch_options, _array_body([trains[k] for k in t_keys]), array=len(t_keys)))
        write("eval_trained.sbatch", _sbatch(f"{name}-eval", logs, _resources(el.num_machines, el.gpus_per_machine),
                                             sbatch_options, _array_body([evals[k] for k in e_keys]), array=len(e_keys)))
        submit += [
            "train=$(sbatch --parsable train.sbatch); train=${train%%;*}",
            "eval_trained=$(sbatch --parsable --dependency=aftercorr:${train} --kill-on-invalid-dep=yes "
            "eval_trained.sbatch); eval_trained=${eval_trained%%;*}",
            'after+=("${eval_trained}")',
            'echo "trainings: job ${train} (array of ' + str(len(t_keys)) + '); their evaluations: job ${eval_trained}"',
        ]
    if u_keys:
        write("eval_untrained.sbatch", _sbatch(f"{name}-eval-untrained", logs,
                                               _resources(el.num_machines, el.gpus_per_machine), sbatch_options,
                                               _array_body([evals[k] for k in u_keys]), array=len(u_keys)))
        submit += ["eval_untrained=$(sbatch --parsable eval_untrained.sbatch); eval_untrained=${eval_untrained%%;*}",
                   'after+=("${eval_untrained}")',
                   'echo "evaluations of untrained models: job ${eval_untrained}"']
    write("report.sbatch", _sbatch(f"{name}-report", logs, ["--nodes=1", "--ntasks=1"], sbatch_options,
                                   [f"bash {shlex.quote(str(report))}"]))
    submit += ['deps=$(IFS=:; echo "${after[*]}")',
               "report=$(sbatch --parsable --dependency=afterany:${deps} report.sbatch); report=${report%%;*}",
               'echo "report: job ${report} (after all evaluations; it lists what did not finish)"']
    submit_path = write("submit.sh", "\n".join(submit) + "\n")
    files.insert(0, submit_path)
    return Exported(files=files + [*trains.values(), *evals.values(), report],
                    commands=[f"bash {shlex.quote(str(submit_path))}"], train_tasks=len(t_keys),
                    eval_trained_tasks=len(e_keys), eval_untrained_tasks=len(u_keys))


def export(plan: Plan, kind: str, sbatch_options: Sequence[str] = (), setup: Sequence[str] | None = None) -> Exported:
    if kind == "slurm":
        return export_slurm(plan, sbatch_options, setup)
    if kind == "commands":
        return export_commands(plan, setup)
    raise ValueError(f"--export must be one of {', '.join(EXPORTS)}, got {kind!r}")
