"""The documentation cannot drift: its blocks are well-formed, its figures name their script, its flags exist.

The blocks themselves are executed by the root ``conftest.py`` (Sybil); this file checks what makes that
execution meaningful: every fenced block says its language (so none escapes execution by omission), every
``skip`` marker gives a kind and a reason, every quoted figure sits in a section that names the bench
command, date and machine that printed it, a page gives a figure once, every command-line flag has a
one-line ``--help``, and every flag that changes what is published, dropped or deleted is documented.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_KINDS = {"network", "gpu", "long", "data"}
FENCE = re.compile(r"^(\s*)(```+|~~~+)(.*)$")
SKIP_MARKER = re.compile(r'^<!-- skip: next "(?P<kind>[a-z]+): (?P<reason>[^"]*\S[^"]*)" -->$')
MEASURED = re.compile(
    r"(?:Measured|Computed) with `python (?P<script>(?:bench|eval)/[\w.<>-]+\.py)[^`]*` on (?P<date>\d{4}-\d{2}-\d{2}), "
    r"(?P<cores>\d+)-core machine"
)
# A quoted figure: a ratio (2.7x), a rate (860 samples/s) or a measured time (12.0 s, 0.28 ms).
FIGURE = re.compile(
    r"(?<![\w.-])(?P<value>\d[\d,]*(?:\.\d+)?)(?:x(?![\w-])| ?(?:samples|items|rows|images|files)/s\b| ?(?:ms|s)(?![\w-]))"
)


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _fences(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, info string) of every opening fence."""
    found, open_fence = [], None
    for n, line in enumerate(lines, 1):
        m = FENCE.match(line)
        if not m:
            continue
        if open_fence is None:
            open_fence = m.group(2)
            found.append((n, m.group(3).strip()))
        elif m.group(2).startswith(open_fence) and not m.group(3).strip():
            open_fence = None
    assert open_fence is None, "a fence is never closed"
    return found


def _prose(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, text) outside fenced blocks, inline code removed."""
    out, inside = [], False
    for n, line in enumerate(lines, 1):
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            out.append((n, re.sub(r"`[^`]*`", "", line)))
    return out


def _sections(lines: list[str]) -> list[tuple[str, list[tuple[int, str]]]]:
    """The page cut at its headings: (heading, [(line number, line)])."""
    sections: list[tuple[str, list[tuple[int, str]]]] = [("(top)", [])]
    inside = False
    for n, line in enumerate(lines, 1):
        if FENCE.match(line):
            inside = not inside
        if not inside and line.startswith("#"):
            sections.append((line.strip(), []))
        sections[-1][1].append((n, line))
    return sections


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_fenced_block_names_its_language(page):
    lines = page.read_text(encoding="utf-8").splitlines()
    bare = [n for n, info in _fences(lines) if not info]
    assert not bare, f"{_id(page)}: fenced blocks without a language (```text for output) at lines {bare}"


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_skip_markers_give_a_kind_and_a_reason_and_precede_a_block(page):
    lines = page.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        if "skip:" not in line or "<!--" not in line:
            continue
        m = SKIP_MARKER.match(line.strip())
        assert m, f'{_id(page)}:{n}: write the marker as <!-- skip: next "KIND: reason" -->, got {line!r}'
        assert m["kind"] in SKIP_KINDS, f"{_id(page)}:{n}: kind {m['kind']!r} is not one of {sorted(SKIP_KINDS)}"
        assert len(m["reason"].split()) >= 2, f"{_id(page)}:{n}: say why the block cannot run, in words"
        following = next((x for x in lines[n:] if x.strip()), "")
        fence = FENCE.match(following)
        assert fence and fence.group(3).strip() in {"bash", "python"}, (
            f"{_id(page)}:{n}: a skip marker must come right before the ```bash or ```python block it skips"
        )


def test_pages_have_runnable_blocks_and_skips_say_why():
    """Most documented commands run; the marked ones are the exception (a floor, so they stay so)."""
    run = skipped = 0
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for n, info in _fences(lines):
            if info not in {"bash", "python"}:
                continue
            before = next((x for x in reversed(lines[: n - 1]) if x.strip()), "")
            if SKIP_MARKER.match(before.strip()):
                skipped += 1
            else:
                run += 1
    assert run >= 12, f"only {run} documented blocks run ({skipped} skipped)"


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_figure_names_the_script_date_and_machine_that_printed_it(page):
    lines = page.read_text(encoding="utf-8").splitlines()
    for heading, body in _sections(lines):
        text = "\n".join(line for _, line in body)
        prose = dict(_prose(lines))
        figures = [(n, m.group(0)) for n, _ in body if n in prose for m in FIGURE.finditer(prose[n])]
        if not figures:
            continue
        marks = list(MEASURED.finditer(re.sub(r"\s*\n\s*", " ", text)))
        assert marks, (
            f"{_id(page)}: section {heading!r} quotes {[f for _, f in figures][:5]} (line {figures[0][0]}) "
            "without the line that produced them: Measured with `python bench/X.py ...` on YYYY-MM-DD, "
            "N-core machine."
        )
        for mark in marks:
            script = mark["script"]
            assert "<" in script or (ROOT / script).is_file(), f"{_id(page)}: {script} does not exist"


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_a_page_gives_each_figure_once(page):
    """The same quantity (a figure and the words after it) appears once per page, outside tables."""
    lines = page.read_text(encoding="utf-8").splitlines()
    text = " ".join(line for _, line in _prose(lines) if not line.lstrip().startswith("|"))
    seen: dict[str, str] = {}
    for m in FIGURE.finditer(text):
        words = re.findall(r"[a-zA-Z]+", text[m.end(): m.end() + 40])[:3]
        if len(words) < 3 or words[0] in {"and", "or", "at", "to", "in", "on", "of", "per", "for", "with"}:
            continue
        key = " ".join(w.lower() for w in words)
        assert key not in seen, f"{_id(page)}: {seen[key]!r} and {m.group(0)!r} both quote '... {key}': give it once"
        seen[key] = m.group(0)


# ---------------------------------------------------------------------------------------------- flags

def _parsers() -> dict[str, argparse.ArgumentParser]:
    from medmat_builder.cli.main import make_parser
    from medmat_builder.evaluate import report
    from medmat_builder.evaluate.cli import build_parser as evaluate_parser
    from medmat_builder.evaluate.experiments.cli import build_parser as experiment_parser

    pytest.importorskip("trl")
    from medmat_builder.train.arguments import make_parser as train_parser

    parsers = {
        "medmat": make_parser(),
        "training/sft.py": train_parser("training/sft.py"),
        "eval/evaluate.py": evaluate_parser("eval/evaluate.py"),
        "eval/experiment.py": experiment_parser("eval/experiment.py"),
    }
    captured: list[argparse.ArgumentParser] = []

    class _Stop(Exception):
        pass

    def capture(self, *args, **kwargs):
        captured.append(self)
        raise _Stop

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = capture
    try:
        report.main(["x"], prog="eval/report.py")
    except _Stop:
        parsers["eval/report.py"] = captured[0]
    finally:
        argparse.ArgumentParser.parse_args = original
    return parsers


def _walk(name: str, parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for sub, subparser in action.choices.items():
                yield f"{name} {sub}", action, helps.get(sub)
                yield from _walk(f"{name} {sub}", subparser)
        elif not isinstance(action, argparse._HelpAction):
            yield name, action, action.help


def test_every_flag_has_a_one_line_help():
    missing = []
    for name, parser in _parsers().items():
        for where, action, text in _walk(name, parser):
            flag = "/".join(action.option_strings) or action.dest
            if isinstance(action, argparse._SubParsersAction):
                flag = where.split()[-1]
            if text is None or text == argparse.SUPPRESS or not str(text).strip():
                missing.append(f"{where}: {flag}")
    assert not missing, "flags without --help text: " + ", ".join(missing)


def test_training_help_lists_config():
    pytest.importorskip("trl")
    from medmat_builder.train.arguments import make_parser

    assert "--config" in make_parser("training/sft.py").format_help()


# Flags that change what is published, dropped, deleted or refused (and the few the issue names as needed):
# each must be in the docs, so nobody learns of them from the code.
DOCUMENTED_FLAGS = {
    "medmat build": ["--out", "--data-dir", "--demo", "--partial", "--lenient", "--seed", "--num-proc", "--registry",
                     "--force", "--progress"],
    "medmat fill": ["--data-dir", "--out", "--num-proc"],
    "medmat report": ["--data-dir"],
    "medmat fetch": ["--data-dir", "--check", "--allow-unpinned", "--subset", "--retries", "--timeout",
                     "--max-unpacked-gb", "--max-members", "--max-ratio"],
    "medmat publish": ["--repo-id", "--dry-run", "--private", "--restricted", "--no-gate", "--save"],
    "medmat sources coverage": ["--write"],
    "medmat plan": ["--out", "--mix", "--target", "--members", "--pairs", "--triples", "--pool", "--target-samples"],
    "medmat export-task": ["--out", "--dataset"],
    "training/sft.py": ["--config", "--dataset_name", "--train_configs", "--mixture", "--target",
                        "--no_leakage_check", "--freeze_vision_tower", "--output_dir", "--resume_from_checkpoint"],
    "eval/evaluate.py": ["--mode", "--circular", "--limit", "--predictions", "--output_dir", "--split"],
    "eval/experiment.py": ["--dry_run", "--export", "--collect", "--output_dir", "--set", "--calibrate"],
}


def test_flags_that_change_what_is_written_are_documented_and_exist():
    parsers = _parsers()
    known: dict[str, set[str]] = {}
    for name, parser in parsers.items():
        for where, action, _ in _walk(name, parser):
            known.setdefault(where, set()).update(action.option_strings)
    docs = "\n".join(p.read_text(encoding="utf-8") for p in PAGES)
    for command, flags in DOCUMENTED_FLAGS.items():
        for flag in flags:
            assert flag in known.get(command, set()), f"{command} has no flag {flag}: update DOCUMENTED_FLAGS"
            assert re.search(re.escape(flag) + r"(?![\w-])", docs), f"{command} {flag} is not in README.md or docs/"


def test_evaluate_docs_name_the_default_mode():
    parser = _parsers()["eval/evaluate.py"]
    default = next(a.default for a in parser._actions if "--mode" in a.option_strings)
    rows = [x for x in (ROOT / "docs" / "eval.md").read_text(encoding="utf-8").splitlines() if x.startswith("| `--mode`")]
    assert rows and f"`{default}`" in rows[0] and "the default" in rows[0], rows
