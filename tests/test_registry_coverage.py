"""Registry coverage: which facts are verified, shown by `medmat sources coverage|show`, kept true in docs and card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from medmat_builder.cli import main
from medmat_builder.registry import FACTS, load_registry, parse_registry
from medmat_builder.registry.coverage import DOC, END, START, coverage_json, coverage_markdown, update_document

REGISTRY = load_registry()
MINI = Path(__file__).parent / "fixtures" / "mini_registry.yaml"


def test_docs_registry_md_coverage_section_is_up_to_date():
    text = DOC.read_text(encoding="utf-8")
    assert update_document(text, REGISTRY) == text, (
        "docs/registry.md is out of date with sources.yaml: run `medmat sources coverage --write docs/registry.md`")


def _with_facts() -> str:
    data = yaml.safe_load(MINI.read_text())
    data["sources"][0]["evidence"] = {"layout": "dataset page | loader", "license": "page footer"}
    data["sources"][0]["unverified"] = {f: "searched the page" for f in FACTS if f not in ("layout", "license")}
    data["sources"][1]["unverified"] = {"license": "no statement found", "checksums": "no checksum published"}
    return yaml.safe_dump(data, sort_keys=False)


def test_coverage_table_lists_verified_and_unverified_facts_with_why():
    reg = parse_registry(_with_facts())
    md = coverage_markdown(reg)
    assert "| 1 | `toy_folders` | license, layout | homepage, access, labels, split, groups, checksums: searched the page |" in md
    assert "| 2 | `toy_table` | none | license: no statement found<br>checksums: no checksum published |" in md
    assert "2 of 24 facts (3 sources x 8 facts)" in md
    data = coverage_json(reg)
    assert data["summary"]["verified_per_fact"]["license"] == 1
    assert data["sources"][0]["verified"] == {"license": "page footer", "layout": "dataset page | loader"}
    doc = f"# Title\n\n{START}\nold\n{END}\n\nafter\n"
    new = update_document(doc, reg)
    assert new.startswith(f"# Title\n\n{START}\n\n2 of 24") and new.endswith(f"{END}\n\nafter\n")
    assert update_document(new, reg) == new
    with pytest.raises(ValueError, match="no coverage markers"):
        update_document("# no markers\n", reg)


def test_cli_coverage_show_and_write(tmp_path, capsys):
    reg_path = tmp_path / "sources.yaml"
    reg_path.write_text(_with_facts())
    assert main(["sources", "--registry", str(reg_path), "coverage", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["verified"] == 2
    doc = tmp_path / "registry.md"
    doc.write_text(f"intro\n{START}\n{END}\n")
    assert main(["sources", "--registry", str(reg_path), "coverage", "--write", str(doc)]) == 0
    assert "regenerated" in capsys.readouterr().out and "`toy_table`" in doc.read_text()
    assert main(["sources", "--registry", str(reg_path), "show", "toy_folders"]) == 0
    out = capsys.readouterr().out
    assert "evidence (facts confirmed by public material):\n    layout: dataset page | loader\n    license: page footer" in out
    assert "unverified facts (and what was searched):\n    homepage: searched the page" in out


def test_card_states_the_unverified_facts_of_each_source():
    from medmat_builder.publish.card_body import config_context, render_body
    from medmat_builder.report import BuildReport, ConfigReport, SplitCounts

    reg = parse_registry(_with_facts())
    report = BuildReport(configs={"subset_01": ConfigReport(num_examples=SplitCounts(train=1, test=1))})
    ctx = config_context(reg, report, "subset_01")
    assert ctx["sources"][1]["unverified"] == {"license": "no statement found", "checksums": "no checksum published"}
    body = render_body(reg, report)
    assert "| yes | homepage, access, labels, split, groups, checksums |" in body
    assert "- `toy_table`: license (no statement found); checksums (no checksum published)." in body
