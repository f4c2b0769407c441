"""``medmat plan``: compositional-generalization mixtures, controlled pairs and triples for a target."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from typing import TYPE_CHECKING

from medmat_builder.cli.main import common_options, summary
from medmat_builder.planner.facts import (
    DEFAULT_BUDGET,
    DEFAULT_CAP,
    DEFAULT_COMBINATION_POOL,
    DEFAULT_MIX_POOL,
    ELEMENTS,
    MEMBER_RULES,
    POOLS,
    RULES,
    TASK_LEVELS,
    PlannerError,
)
from medmat_builder.records import DEFAULT_SEED

if TYPE_CHECKING:
    from medmat_builder.planner import Mixture, Planner


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plan",
        parents=[common_options()],
        help=summary("plan"),
        description=(
            "Relations of a target subset to all others by MAT triplet, and the paper's data selections as "
            "mixture files. Examples: `medmat plan --target subset_28 --mix related --out related_28.yaml`, "
            "`medmat plan --target subset_03 --pairs`."
        ),
    )
    p.add_argument("--target", required=True,
                   help="target config, e.g. subset_28 (never in a mixture unless --target-samples)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--mix", choices=RULES, default="related",
                      help="selection rule for the mixture (default: related); pair, triple and configs take "
                           "--members, and baseline-plus may (Unrelated sampled to those members' volume)")
    what.add_argument("--pairs", action="store_true", help="list Table 3-style controlled pairs for the target")
    what.add_argument("--triples", action="store_true", help="list Table 4-style triples (one subset per element)")
    p.add_argument("--members", nargs="+", default=(), metavar="CONFIG",
                   help="member configs for --mix pair|triple|configs (e.g. --members subset_25 subset_32)")
    p.add_argument("--pool", choices=POOLS, default=None,
                   help=f"candidate subsets (default: {DEFAULT_MIX_POOL} for --mix, "
                        f"{DEFAULT_COMBINATION_POOL} for --pairs/--triples, as in the paper)")
    p.add_argument("--tasks", choices=TASK_LEVELS, default="grouped",
                   help="compare tasks as groups (COVID and Cancer count as State; default) or as fine tasks")
    p.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help=f"total samples (default {DEFAULT_BUDGET})")
    p.add_argument("--cap", type=int, default=DEFAULT_CAP,
                   help=f"at most this many samples per config (default {DEFAULT_CAP})")
    p.add_argument("--report", default=None,
                   help="build_report.json of a build: also cap each config at its kept training records")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"seed for the split of the budget (default {DEFAULT_SEED})")
    p.add_argument("--target-samples", type=int, default=0,
                   help="add this many target records (RQ2); by default the target is never in a mixture")
    p.add_argument("--out", default=None, help="write the mixture file here (YAML)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, planner: Planner | None = None) -> int:
    """Run ``medmat plan``; ``planner`` replaces the registry (tests pass hand-made subsets).

    A wrong target, member or file is one line on stderr and exit 2 (cli/errors.py)."""
    from medmat_builder.cli.errors import report
    from medmat_builder.planner import planner_from_registry

    try:
        planner = planner or planner_from_registry(args.registry, tasks=args.tasks)
        target = planner.subset(args.target).name
        if args.pairs or args.triples:
            return _combinations(planner, target, args)
        return _mixture(planner, target, args)
    except (PlannerError, KeyError) as exc:
        return max(report(exc), 2)


def _combinations(planner: Planner, target: str, args: argparse.Namespace) -> int:
    pool = args.pool or DEFAULT_COMBINATION_POOL
    if args.pairs:
        items = planner.pairs(target, pool)
    else:
        items = planner.triples(target, pool)
    if args.format == "json":
        print(json.dumps([list(i.configs) for i in items]))
        return 0
    t = planner.subset(target)
    kind = "controlled pairs" if args.pairs else "triples"
    print(f"{kind} for {target} ({t.label()}; task group {t.task_group}), pool {pool}, {planner.tasks} tasks")
    if args.pairs:
        print(f"{'direction':<15} {'X':<10} {'X triplet':<34} {'brings':<14} {'Y':<10} {'Y triplet':<34} brings")
        for p in items:
            print(f"{p.direction:<15} {p.x:<10} {planner.subset(p.x).label():<34} {p.brings[0]:<14} "
                  f"{p.y:<10} {planner.subset(p.y).label():<34} {p.brings[1]}")
    else:
        print(f"{'modality from':<14} {'triplet':<34} {'area from':<10} {'triplet':<34} {'task from':<10} triplet")
        for i in items:
            print("  ".join(f"{c:<10} {planner.subset(c).label():<34}" for c in i.configs).rstrip())
    print(f"{len(items)} {kind}")
    return 0


def _mixture(planner: Planner, target: str, args: argparse.Namespace) -> int:
    pool = args.pool or (DEFAULT_COMBINATION_POOL if args.mix in MEMBER_RULES else DEFAULT_MIX_POOL)
    from medmat_builder.planner import caps_from_build_report

    caps = caps_from_build_report(args.report) if args.report else None
    mixture: Mixture = planner.mixture(
        target, args.mix, members=args.members, budget=args.budget, cap=args.cap, caps=caps, seed=args.seed,
        pool=pool, target_samples=args.target_samples,
    )
    relations = planner.relations(target, pool)
    related = [r.config for r in relations if r.related]
    unrelated = [r.config for r in relations if not r.related]
    if args.out:
        mixture.save(args.out)
    if args.format == "json":
        print(json.dumps({
            "target": target,
            "triplet": {e: getattr(planner.subset(target), e) for e in ELEMENTS},
            "rule": mixture.rule,
            "pool": pool,
            "tasks": planner.tasks,
            "seed": mixture.seed,
            "budget": mixture.budget,
            "related": related,
            "unrelated": unrelated,
            "without": {e: planner.without(target, e, pool) for e in ELEMENTS},
            "mixture": [e.model_dump() for e in mixture.configs],
            "total": mixture.total,
            "out": str(Path(args.out)) if args.out else None,
        }))
        return 0
    t = planner.subset(target)
    counts = mixture.sample_counts
    print(f"target {target} ({t.label()}; task group {t.task_group})  rule {mixture.rule}  pool {pool}  "
          f"{planner.tasks} tasks  seed {mixture.seed}")
    # direction: the direction types of the target's controlled pairs that use the subset; pairs are
    # drawn from all classification subsets as in the paper (Table 3), or from everything with --pool all.
    pair_pool = "all" if pool == "all" else DEFAULT_COMBINATION_POOL
    print(f"{'subset':<10} {'triplet':<34} {'shared':<22} {'direction':<40} {'samples':>7}")
    for r in relations:
        directions = ", ".join(planner.directions_of(target, r.config, pair_pool)) or "-"
        shared = ", ".join(r.shared) or "-"
        samples = str(counts[r.config]) if r.config in counts else "-"
        print(f"{r.config:<10} {planner.subset(r.config).label():<34} {shared:<22} {directions:<40} {samples:>7}")
    if mixture.target_samples:
        print(f"{target:<10} {t.label():<34} {'(target, RQ2)':<22} {'-':<40} {mixture.target_samples:>7}")
    print(f"Related {len(related)} : Unrelated {len(unrelated)} of {len(relations)} subsets in pool {pool}")
    print(f"{mixture.rule_text}")
    print(f"mixture: {len(mixture.configs)} configs, {mixture.total} samples "
          f"(budget {mixture.budget}, cap {mixture.cap})")
    if mixture.total - mixture.target_samples < mixture.budget:
        print(f"note: these configs supply only {mixture.total - mixture.target_samples} samples under the caps; "
              f"for equal-volume comparisons give every rule --budget {mixture.total - mixture.target_samples}")
    if args.out:
        print(f"wrote {args.out}")
    return 0
