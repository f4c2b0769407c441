"""Tests of the CG planner (medmat_builder/planner/) and `medmat plan` (cli/plan.py).

Paper facts come from tests/fixtures/table9_triplets.yaml (Table 9 triplets + our task taxonomy);
a separate test checks that fixture against sources.yaml.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from medmat_builder.cli import plan as plan_cmd
from medmat_builder.planner import (
    DEFAULT_BUDGET,
    Mixture,
    MixtureEntry,
    Planner,
    PlannerError,
    allocate,
    caps_from_build_report,
    parse_mixture_name,
    planner_from_registry,
    resolve_mixture,
)
from medmat_builder.registry import DEFAULT_REGISTRY_PATH

FIXTURE = Path(__file__).parent / "fixtures" / "table9_triplets.yaml"
FIELDS = ("name", "modality", "area", "task", "task_group", "kind", "paper_distribution", "title")


def s(n: str | int) -> str:
    return f"subset_{int(n):02d}"


def fixture_rows() -> list[dict]:
    return yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))["subsets"]


def fixture_subsets(**overrides: dict) -> list[SimpleNamespace]:
    """Subset-like objects from the fixture; ``overrides`` maps a config to replaced fields."""
    out = []
    for row in fixture_rows():
        row = {**row, **overrides.get(row["name"], {})}
        out.append(SimpleNamespace(**row))
    return out


@pytest.fixture(scope="module")
def planner() -> Planner:
    return Planner(fixture_subsets())


def tri(name, modality, area, task, group=None, kind="single-label", dist="id"):
    return SimpleNamespace(name=name, modality=modality, area=area, task=task, task_group=group or task,
                           kind=kind, paper_distribution=dist)


# --------------------------------------------------------------------------------------------------
# Relation logic on hand-made triplets
# --------------------------------------------------------------------------------------------------

HAND = [
    tri("subset_01", "CT", "Lung", "COVID", "State"),        # target
    tri("subset_02", "CT", "Kidney", "Diseases"),            # modality
    tri("subset_03", "X-ray", "Lung", "Diseases"),           # area
    tri("subset_04", "MRI", "Brain", "Cancer", "State"),     # task only when grouped
    tri("subset_05", "Der", "Skin", "Level"),                # nothing
    tri("subset_06", "CT", "Lung", "Cancer", "State", dist="ood"),  # modality+area (+task grouped)
    tri("subset_07", "X-ray", "Lung", "Lung Det", "Detection", kind="segmentation", dist="none"),
]


def test_shared_elements_grouped_and_fine():
    grouped, fine = Planner(HAND), Planner(HAND, tasks="fine")
    assert grouped.shared("subset_01", "subset_02") == ("modality",)
    assert grouped.shared("subset_01", "subset_03") == ("area",)
    assert grouped.shared("subset_01", "subset_04") == ("task",)
    assert fine.shared("subset_01", "subset_04") == ()
    assert grouped.shared("subset_01", "subset_06") == ("modality", "area", "task")
    assert fine.shared("subset_01", "subset_06") == ("modality", "area")
    assert grouped.shared("subset_01", "subset_05") == ()


def test_related_unrelated_and_without_partition_the_pool():
    p = Planner(HAND)
    assert p.related("subset_01", "all") == ["subset_02", "subset_03", "subset_04", "subset_06", "subset_07"]
    assert p.unrelated("subset_01", "all") == ["subset_05"]
    assert p.without("subset_01", "modality", "all") == ["subset_03", "subset_04", "subset_07"]
    assert p.without("subset_01", "area", "all") == ["subset_02", "subset_04"]
    assert p.without("subset_01", "task", "all") == ["subset_02", "subset_03", "subset_07"]
    assert Planner(HAND, tasks="fine").unrelated("subset_01", "all") == ["subset_04", "subset_05"]
    for rule in ("related", "unrelated", "all", "wo-modality", "wo-area", "wo-task", "baseline-plus"):
        assert "subset_01" not in p.select("subset_01", rule, "all")


def test_pools():
    p = Planner(HAND)
    assert p.pool("id", exclude="subset_01") == ["subset_02", "subset_03", "subset_04", "subset_05"]
    assert "subset_06" in p.pool("classification") and "subset_07" not in p.pool("classification")
    assert "subset_07" in p.pool("all")
    with pytest.raises(PlannerError, match="pool must be one of"):
        p.pool("ood")


def test_pairs_per_direction_on_hand_made_triplets():
    subsets = [
        tri("subset_10", "CT", "Lung", "Cancer", "State"),    # target
        tri("subset_11", "CT", "Lung", "COVID", "State"),     # brings Lung under fixed CT (fine task differs)
        tri("subset_12", "CT", "Brain", "Cancer", "State"),   # brings Cancer under fixed CT
        tri("subset_13", "X-ray", "Lung", "Cancer", "State"),  # brings Cancer under fixed Lung
        tri("subset_14", "CT", "Lung", "Cancer", "State"),    # same fine triplet: never part of a pair
        tri("subset_15", "X-ray", "Brain", "State"),          # shares only the task
    ]
    pairs = Planner(subsets).pairs("subset_10", "all")
    got = {(p.direction, p.x, p.y) for p in pairs}
    assert ("fixed-modality", "subset_11", "subset_12") in got
    assert ("fixed-area", "subset_11", "subset_13") in got
    assert ("fixed-task", "subset_12", "subset_13") in got
    assert all("subset_14" not in p.configs for p in pairs)
    assert all("subset_10" not in p.configs for p in pairs)
    # fine tasks: COVID no longer brings State, so fixed-modality still works (X only brings the area)
    # but subset_15 (State) cannot bring Cancer.
    fine = {(p.direction, p.x, p.y) for p in Planner(subsets, tasks="fine").pairs("subset_10", "all")}
    assert ("fixed-modality", "subset_11", "subset_12") in fine
    assert all("subset_15" not in (x, y) for _, x, y in fine)


def test_modality_area_direction_only_for_inseparable_pairs():
    subsets = [
        tri("subset_01", "Der", "Skin", "Diseases"),
        tri("subset_02", "Der", "Skin", "Cancer", "State"),
        tri("subset_03", "FP", "Fundus", "Diseases"),
        tri("subset_04", "CT", "Lung", "Diseases"),
        tri("subset_05", "CT", "Lung", "COVID", "State"),
        tri("subset_06", "CT", "Brain", "Level"),
    ]
    p = Planner(subsets)
    assert p.inseparable("subset_01") and not p.inseparable("subset_04")
    assert {(x.direction, x.x, x.y) for x in p.pairs("subset_01", "all")} == {
        ("modality-area", "subset_02", "subset_03"),
        ("modality-area", "subset_02", "subset_04"),
    }
    assert all(x.direction != "modality-area" for x in p.pairs("subset_04", "all"))


def test_triples_bring_one_element_each():
    subsets = [
        tri("subset_01", "CT", "Brain", "Cancer", "State"),
        tri("subset_02", "CT", "Kidney", "Diseases"),
        tri("subset_03", "MRI", "Brain", "Diseases"),
        tri("subset_04", "Der", "Skin", "Cancer", "State"),
        tri("subset_05", "CT", "Brain", "Level"),     # brings two elements: not a triple member
        tri("subset_06", "CT", "Lung", "COVID", "State"),  # brings CT (fine task differs) as in Table 4
    ]
    got = {t.configs for t in Planner(subsets).triples("subset_01", "all")}
    assert got == {("subset_02", "subset_03", "subset_04"), ("subset_06", "subset_03", "subset_04")}


def test_planner_rejects_bad_input():
    with pytest.raises(PlannerError, match="not subset-like"):
        Planner([SimpleNamespace(name="subset_01")])
    with pytest.raises(PlannerError, match="more than once"):
        Planner([HAND[0], HAND[0]])
    with pytest.raises(PlannerError, match="tasks must be one of"):
        Planner(HAND, tasks="coarse")
    with pytest.raises(PlannerError, match="unknown config"):
        Planner(HAND).subset("subset_99")
    assert Planner(HAND).subset(3).name == "subset_03"


# --------------------------------------------------------------------------------------------------
# The fixture and the registry
# --------------------------------------------------------------------------------------------------

TABLE1_ID = "02 03 07 08 09 11 13 14 15 16 18 19 21 22 23 25 26 28 30 31 32 33 35 36 37".split()
TABLE2_OOD = "01 04 05 06 10 12 17 20 24 27 29 34".split()


def test_fixture_matches_paper_tables_1_2_and_9():
    rows = {r["name"]: r for r in fixture_rows()}
    assert list(rows) == [s(i) for i in range(1, 54)]
    assert sorted(n for n, r in rows.items() if r["paper_distribution"] == "id") == [s(n) for n in TABLE1_ID]
    assert sorted(n for n, r in rows.items() if r["paper_distribution"] == "ood") == [s(n) for n in TABLE2_OOD]
    assert all(rows[s(i)]["kind"] in ("detection", "segmentation") for i in range(38, 54))
    assert (rows["subset_28"]["modality"], rows["subset_28"]["area"]) == ("X-ray", "Lung")
    # App. B.1: COVID and Cancer are grouped under State
    assert {r["task_group"] for r in rows.values() if r["task"] in ("COVID", "Cancer")} == {"State"}


def _registry():
    if not DEFAULT_REGISTRY_PATH.exists():
        pytest.skip("sources.yaml is not written yet")
    from medmat_builder.registry import load_registry

    return load_registry()


def test_fixture_agrees_with_registry():
    reg = _registry()
    rows = {r["name"]: r for r in fixture_rows()}
    diffs = [f"{sub.name}.{f}: registry {getattr(sub, f)!r} != fixture {rows[sub.name][f]!r}"
             for sub in reg.subsets for f in FIELDS if getattr(sub, f) != rows[sub.name][f]]
    assert not diffs, "\n".join(diffs)


def test_registry_has_all_53_subsets():
    reg = _registry()
    assert reg.subset_names == [s(i) for i in range(1, 54)]


def test_planner_from_registry_matches_fixture():
    reg = _registry()
    p = planner_from_registry(reg)
    f = Planner(fixture_subsets())
    for target in ("subset_03", "subset_28"):
        if target in reg.subset_names:
            assert p.related(target) == [x for x in f.related(target) if x in reg.subset_names]


# --------------------------------------------------------------------------------------------------
# Related:Unrelated counts for the scale-up targets (Section 3.2)
# --------------------------------------------------------------------------------------------------


def test_counts_for_subsets_03_and_28(planner):
    def ratio(p, t, pool):
        return len(p.related(t, pool)), len(p.unrelated(t, pool))

    assert ratio(planner, "subset_03", "id") == (8, 16)
    assert ratio(planner, "subset_28", "id") == (12, 12)
    assert ratio(planner, "subset_03", "classification") == (13, 23)
    assert ratio(planner, "subset_28", "classification") == (19, 17)
    fine = Planner(fixture_subsets(), tasks="fine")
    assert ratio(fine, "subset_03", "id") == (3, 21)
    assert ratio(fine, "subset_28", "id") == (9, 15)
    assert planner.related("subset_03", "id") == [s(n) for n in ("02", "07", "09", "21", "26", "28", "30", "32")]


def _partitions(items):
    if not items:
        yield []
        return
    head, rest = items[0], items[1:]
    for part in _partitions(rest):
        for i in range(len(part)):
            yield part[:i] + [[head] + part[i]] + part[i + 1:]
        yield [[head]] + part


def test_no_task_grouping_gives_the_papers_13_11_and_11_13():
    """The paper's 13:11 (subset 03) and 11:13 (subset 28) over the 24 other ID subsets cannot both hold
    under any grouping of the classification tasks, given Table 9's modalities and areas (docs/planner.md)."""
    rows = [r for r in fixture_rows() if r["paper_distribution"] == "id"]
    tasks = sorted({r["task"] for r in rows} | {"Diseases"})
    for t30 in ("State", "Diseases"):
        for part in _partitions(tasks):
            group = {t: "+".join(b) for b in part for t in b}
            subs = []
            for r in rows:
                task = t30 if r["name"] == "subset_30" else r["task"]
                subs.append(SimpleNamespace(**{**r, "task": task, "task_group": group[task]}))
            p = Planner(subs)
            assert (len(p.related("subset_03")), len(p.related("subset_28"))) != (13, 11)


# --------------------------------------------------------------------------------------------------
# Paper Tables 3 and 4 appear in the planner's output
# --------------------------------------------------------------------------------------------------

# (row, target, X candidates, Y candidates, needs the paper's reading of subset 30). Where the paper's
# cell fits several subsets with the same triplet (e.g. "Bones, Level" = 25 or 35), all must appear.
TABLE3 = [
    (1, "04", ["03"], ["06"]), (2, "03", ["04"], ["05"]), (3, "05", ["06"], ["03"]),
    (4, "26", ["25", "35"], ["28"]), (5, "26", ["25", "35"], ["32"]),
    (6, "27", ["25", "35"], ["29", "37"]), (7, "27", ["25", "35"], ["30"]),
    (8, "27", ["25", "35"], ["31"]), (9, "27", ["26"], ["29", "37"]),
    (10, "27", ["26"], ["30"]), (11, "27", ["26"], ["31"]),
    (12, "30", ["28"], ["29", "37"]), (13, "30", ["28"], ["27", "36"]),
    (14, "30", ["28"], ["31"]),
    (15, "03", ["04"], ["28"]), (16, "28", ["03"], ["30"]), (17, "28", ["03", "04"], ["30"]),
    (18, "06", ["05"], ["32"]),
    (19, "32", ["05"], ["26"]), (20, "32", ["05", "06"], ["28"]), (21, "32", ["06"], ["26"]),
    (22, "32", ["05", "06"], ["28"]), (23, "05", ["32"], ["03"]), (24, "04", ["28"], ["05", "06"]),
    (25, "03", ["28"], ["05"]), (26, "03", ["28"], ["06"]), (27, "28", ["03"], ["26"]),
    (28, "28", ["03"], ["32"]), (29, "28", ["04"], ["26"]), (30, "28", ["04"], ["32"]),
    (31, "08", ["07"], ["14", "15"]), (32, "08", ["07"], ["23"]), (33, "07", ["08"], ["10"]),
    (34, "07", ["08"], ["21"]), (35, "10", ["09"], ["07"]), (36, "10", ["09"], ["21"]),
    (37, "16", ["14", "15"], ["19"]), (37, "34", ["14", "15"], ["19"]),
    (38, "19", ["18", "20"], ["16", "34"]), (39, "21", ["18", "20"], ["07"]),
    (40, "21", ["18", "20"], ["10"]), (41, "21", ["19"], ["07"]), (42, "21", ["19"], ["10"]),
    (43, "19", ["21"], ["16", "34"]),
]
TABLE3_DIRECTION = {**{r: "fixed-modality" for r in range(1, 15)}, **{r: "fixed-area" for r in range(15, 19)},
                    **{r: "fixed-task" for r in range(19, 31)}, **{r: "modality-area" for r in range(31, 44)}}

# (row, target, (modality from, area from, task from), needs the paper's reading of subset 30)
TABLE4 = [
    (1, "06", ("02", "22", "07")), (2, "06", ("03", "22", "21")),
    (3, "05", ("02", "22", "09")), (4, "05", ("03", "22", "26")),
    (5, "30", ("25", "03", "02")), (6, "30", ("26", "03", "02")), (7, "30", ("26", "03", "08")),
    (8, "29", ("26", "24", "02")), (9, "29", ("28", "24", "08")),
    # rows 8-9 name the target "X-ray, Breast, Diseases": subset 37 is that triplet too
    (8, "37", ("26", "24", "02")), (9, "37", ("28", "24", "08")),
]


@pytest.mark.parametrize("row,target,xs,ys", TABLE3, ids=[f"row{r[0]}-{r[1]}" for r in TABLE3])
def test_table3_rows_are_pairs(planner, row, target, xs, ys):
    p = planner
    got = {frozenset(x.configs): x.direction for x in p.pairs(s(target))}  # default pool: classification
    for x, y in itertools.product(xs, ys):
        key = frozenset((s(x), s(y)))
        assert key in got, f"Table 3 row {row}: ({x}, {y}) -> {target} missing"
        assert got[key] == TABLE3_DIRECTION[row]


@pytest.mark.parametrize("row,target,members", TABLE4, ids=[f"row{r[0]}-{r[1]}" for r in TABLE4])
def test_table4_rows_are_triples(planner, row, target, members):
    p = planner
    assert tuple(map(s, members)) in {t.configs for t in p.triples(s(target))}


def test_table5_detection_rows_need_pool_all(planner):
    """Section 4.4 (Tables 5-6): detection subsets can bring the area or modality."""
    rows = [("30", "47", "27"), ("30", "47", "29"), ("27", "49", "29"), ("27", "49", "30"),
            ("28", "47", "03"), ("08", "38", "14"), ("33", "42", "02")]
    for target, x, y in rows:
        assert frozenset((s(x), s(y))) in {frozenset(p.configs) for p in planner.pairs(s(target), "all")}
        assert frozenset((s(x), s(y))) not in {frozenset(p.configs) for p in planner.pairs(s(target))}


def test_fine_tasks_lose_table3_rows(planner):
    fine = Planner(fixture_subsets(), tasks="fine")
    # row 2: CT/Brain/State brings the task of CT/Lung/COVID only when COVID counts as State
    assert frozenset(("subset_04", "subset_05")) in {frozenset(p.configs) for p in planner.pairs("subset_03")}
    assert frozenset(("subset_04", "subset_05")) not in {frozenset(p.configs) for p in fine.pairs("subset_03")}


# --------------------------------------------------------------------------------------------------
# Volumes and mixtures
# --------------------------------------------------------------------------------------------------


def test_allocate_even_split_caps_and_seeded_remainder():
    cfg = [s(i) for i in (2, 7, 9, 21, 26, 32, 30)]
    a = allocate(cfg, 15000, cap=3000, seed=42)
    assert sum(a.values()) == 15000 and set(a.values()) <= {2142, 2143}
    assert a == allocate(cfg, 15000, cap=3000, seed=42)
    others = [allocate(cfg, 15000, cap=3000, seed=k) for k in range(5)]
    assert any(o != a for o in others)  # the seed picks which configs get the extra sample
    capped = allocate(cfg, 15000, cap=3000, caps={"subset_02": 100, "subset_07": 0})
    assert capped["subset_02"] == 100 and "subset_07" not in capped
    assert sum(capped.values()) == 15000 and max(capped.values()) <= 3000
    assert allocate(cfg, 100000, cap=3000) == {c: 3000 for c in cfg}
    assert sum(allocate(cfg, 3, cap=3000).values()) == 3
    assert allocate(cfg, 0) == {}


def test_mixture_rules_and_budget(planner):
    m = planner.mixture("subset_28", "related")
    assert m.config_names == planner.related("subset_28", "id")
    assert m.total == DEFAULT_BUDGET and m.seed == 42 and m.pool == "id" and m.tasks == "grouped"
    assert all(e.samples <= 3000 for e in m.configs)
    wo = planner.mixture("subset_03", "wo-task")
    assert wo.config_names == ["subset_02", "subset_30"] and wo.total == 6000  # two subsets, each capped
    allm = planner.mixture("subset_03", "all")
    assert len(allm.configs) == 24


def test_baseline_plus_matches_related_volume(planner):
    for target in ("subset_03", "subset_28"):
        rel = planner.mixture(target, "related", budget=6000)
        bp = planner.mixture(target, "baseline-plus", budget=6000)
        assert bp.total == rel.total
        assert set(bp.config_names) == set(planner.unrelated(target, "id"))
    pair = planner.mixture("subset_26", "pair", members=["subset_25", "subset_32"])
    bp = planner.mixture("subset_26", "baseline-plus", members=["subset_25", "subset_32"], pool="classification")
    assert pair.total == bp.total == 6000
    assert not set(bp.config_names) & set(planner.related("subset_26", "all"))


def test_no_mixture_contains_the_target_unless_asked(planner):
    for target in planner.names:
        for rule in ("related", "unrelated", "all", "wo-modality", "wo-area", "wo-task", "baseline-plus"):
            for pool in ("id", "all"):
                assert target not in planner.mixture(target, rule, pool=pool).config_names
    m = planner.mixture("subset_28", "related", target_samples=500)
    assert m.sample_counts["subset_28"] == 500
    with pytest.raises(PlannerError, match="is the target"):
        planner.mixture("subset_28", "configs", members=["subset_28", "subset_03"])
    with pytest.raises(ValueError, match="target_samples is 0"):
        Mixture(name="x", target="subset_28", rule="related", rule_text="", budget=1, cap=1, pool="id",
                tasks="grouped", configs=[MixtureEntry(config="subset_28", samples=1)])


def test_pair_and_triple_members_are_checked(planner):
    m = planner.mixture("subset_06", "triple", members=["subset_02", "subset_22", "subset_07"])
    assert m.config_names == ["subset_02", "subset_22", "subset_07"] and m.total == 9000
    with pytest.raises(PlannerError, match="is not a pair for subset_28"):
        planner.mixture("subset_28", "pair", members=["subset_02", "subset_08"])
    assert planner.mixture("subset_28", "configs", members=["subset_02", "subset_08"]).total == 6000


def test_rq1_and_rq2_series(planner):
    rq1 = planner.series("rq1", "subset_26", "pair", members=["subset_25", "subset_32"])
    assert [m.total for m in rq1] == [0, 750, 1500, 2250, 3000]
    assert all("subset_26" not in m.config_names for m in rq1)
    rq2 = planner.series("rq2", "subset_27", "pair", members=["subset_25", "subset_29"])
    assert [m.target_samples for m in rq2] == [0, 500, 1000, 1500, 2000]
    assert [m.total - m.target_samples for m in rq2] == [3000] * 5


def test_mixture_files_are_byte_identical_and_round_trip(planner, tmp_path):
    a = planner.mixture("subset_28", "related", budget=15001, seed=42).save(tmp_path / "a.yaml")
    b = planner.mixture("subset_28", "related", budget=15001, seed=42).save(tmp_path / "b.yaml")
    assert a.read_bytes() == b.read_bytes()
    loaded = Mixture.load(a)
    assert loaded == planner.mixture("subset_28", "related", budget=15001, seed=42)
    data = yaml.safe_load(a.read_text())
    assert data["target"] == "subset_28" and data["seed"] == 42 and data["rule"] == "related"
    assert data["configs"][0].keys() == {"config", "samples"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: subset_28\n")
    with pytest.raises(PlannerError, match="not a valid mixture"):
        Mixture.load(bad)


def test_resolve_mixture_by_name_and_path(planner, tmp_path):
    m = resolve_mixture("wo-area:subset_03", planner=planner)
    assert m.name == "wo-area:subset_03" and m.config_names == planner.without("subset_03", "area")
    assert resolve_mixture("baseline-plus:28", planner=planner).rule == "baseline-plus"
    p = planner.mixture("subset_26", "pair", members=["subset_25", "subset_32"])
    assert resolve_mixture(p.name, planner=planner) == p
    path = resolve_mixture("related:subset_28", planner=planner, seed=7).save(tmp_path / "m.yaml")
    assert resolve_mixture(path).seed == 7 and resolve_mixture(str(path)).target == "subset_28"
    assert parse_mixture_name("triple:6:2+22+7") == ("triple", "subset_06", ["subset_02", "subset_22", "subset_07"])
    with pytest.raises(PlannerError, match="neither a mixture file nor a mixture name"):
        resolve_mixture("closest:subset_28", planner=planner)
    with pytest.raises(PlannerError, match="not found"):
        resolve_mixture(tmp_path / "missing.yaml")


def test_caps_from_build_report(tmp_path):
    report = {"version": 1, "configs": {"subset_02": {"sources": {"a": {"raw": 9, "kept": {"train": 40, "test": 5}},
                                                                 "b": {"raw": 3, "kept": {"train": 2, "test": 1}}}}}}
    path = tmp_path / "build_report.json"
    path.write_text(json.dumps(report))
    assert caps_from_build_report(path) == {"subset_02": 42}


# --------------------------------------------------------------------------------------------------
# `medmat plan`
# --------------------------------------------------------------------------------------------------


def cli(planner: Planner, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="medmat")
    plan_cmd.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["plan", *argv])
    return args.func(args, planner=planner)


def test_cli_json_mixture(planner, capsys, tmp_path):
    assert cli(planner, "--target", "subset_28", "--mix", "related", "--format", "json",
               "--out", str(tmp_path / "m.yaml")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == "subset_28"
    assert out["related"] == planner.related("subset_28") and out["unrelated"] == planner.unrelated("subset_28")
    assert [e["config"] for e in out["mixture"]] == out["related"]
    assert sum(e["samples"] for e in out["mixture"]) == 15000
    assert Mixture.load(tmp_path / "m.yaml").sample_counts == {e["config"]: e["samples"] for e in out["mixture"]}


def test_cli_out_is_byte_identical_for_same_seed(planner, capsys, tmp_path):
    for name in ("a", "b"):
        assert cli(planner, "--target", "subset_03", "--mix", "wo-modality", "--budget", "10001",
                   "--seed", "42", "--out", str(tmp_path / f"{name}.yaml")) == 0
    assert (tmp_path / "a.yaml").read_bytes() == (tmp_path / "b.yaml").read_bytes()


def test_cli_table(planner, capsys):
    assert cli(planner, "--target", "subset_03", "--mix", "unrelated") == 0
    out = capsys.readouterr().out
    assert "subset" in out and "triplet" in out and "shared" in out and "direction" in out and "samples" in out
    assert "Related 8 : Unrelated 16" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("subset_28"))
    assert "area, task" in line and "fixed-area" in line and line.rstrip().endswith("-")


def test_cli_pairs_and_triples_json(planner, capsys):
    for row, target, xs, ys in TABLE3:
        assert cli(planner, "--target", s(target), "--pairs", "--format", "json") == 0
        got = {frozenset(p) for p in json.loads(capsys.readouterr().out)}
        assert all(frozenset((s(x), s(y))) in got for x, y in itertools.product(xs, ys)), row
    for row, target, members in TABLE4:
        assert cli(planner, "--target", s(target), "--triples", "--format", "json") == 0
        assert list(map(s, members)) in json.loads(capsys.readouterr().out), row


def test_cli_pairs_table_and_errors(planner, capsys):
    assert cli(planner, "--target", "subset_03", "--pairs") == 0
    out = capsys.readouterr().out
    assert "fixed-modality  subset_04" in out and "5 controlled pairs" in out
    assert cli(planner, "--target", "subset_99") == 2
    assert "unknown config" in capsys.readouterr().err
    assert cli(planner, "--target", "subset_28", "--pool", "classification", "--target-samples", "500",
               "--format", "json") == 0
    out = json.loads(capsys.readouterr().out)
    assert {"config": "subset_28", "samples": 500} in out["mixture"]


def test_cli_writes_pair_triple_and_pair_baseline_plus_files(planner, capsys, tmp_path):
    """The Section 3.1 / Table 4 selections as mixture files, readable by training by path."""
    assert cli(planner, "--target", "subset_26", "--mix", "pair", "--members", "subset_25", "subset_32",
               "--out", str(tmp_path / "pair.yaml")) == 0
    assert "controlled pair subset_25 + subset_32" in capsys.readouterr().out
    pair = Mixture.load(tmp_path / "pair.yaml")
    assert pair.name == "pair:subset_26:subset_25+subset_32" and pair.pool == "classification"
    assert pair.sample_counts == {"subset_25": 3000, "subset_32": 3000}
    assert resolve_mixture(pair.name, planner=planner) == pair  # the name reproduces the file
    assert cli(planner, "--target", "subset_06", "--mix", "triple", "--members", "subset_02", "subset_22",
               "subset_07", "--format", "json") == 0
    assert [e["config"] for e in json.loads(capsys.readouterr().out)["mixture"]] == ["subset_02", "subset_22", "subset_07"]
    assert cli(planner, "--target", "subset_26", "--mix", "baseline-plus", "--members", "subset_25", "subset_32",
               "--format", "json") == 0
    plus = json.loads(capsys.readouterr().out)
    assert sum(e["samples"] for e in plus["mixture"]) == 6000 and "subset_25" not in {e["config"] for e in plus["mixture"]}
    assert cli(planner, "--target", "subset_26", "--mix", "pair", "--members", "subset_25", "subset_02") == 2
    assert "is not a pair for subset_26" in capsys.readouterr().err
    assert cli(planner, "--target", "subset_28", "--mix", "related", "--members", "subset_25") == 2
    assert "takes no member configs" in capsys.readouterr().err
