"""``medmat sources list|show|check|coverage``: browse, validate and audit the registry."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from medmat_builder.cli.main import common_options, summary
from medmat_builder.scripts import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from medmat_builder.registry import Registry, Source, listing


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sources", help=summary("sources"),
                              parents=[common_options()])
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", help="one line per source", parents=[common_options()])
    ls.add_argument("--subset", default=None, help="only the sources of this config, e.g. subset_28")
    show = sub.add_parser("show", help="everything about one source, including how to obtain it",
                          parents=[common_options()])
    show.add_argument("key", help="source key, e.g. kvasir_v2 (`medmat sources list` names them)")
    check = sub.add_parser("check", help="validate sources.yaml (schema and cross references); with --data-dir, "
                           "which sources are unpacked", parents=[common_options()])
    check.add_argument("--data-dir", type=Path, metavar="RAW", default=None,
                       help="also list which sources are unpacked as RAW/<key>/, naming a folder close to a missing one")
    cov = sub.add_parser("coverage", help="per source, which facts are verified by public evidence and which not (why)",
                         parents=[common_options()])
    cov.add_argument("--format", choices=["md", "json"], default="md", help="output format (default: md)")
    cov.add_argument("--write", type=Path, metavar="DOC", default=None,
                     help="regenerate the coverage section of DOC (e.g. docs/registry.md) between its markers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        from medmat_builder.registry import listing
        from medmat_builder.resources import registry_path

        rows = listing.rows(Path(args.registry) if args.registry is not None else registry_path(), args.subset)
        if rows is not None:  # this registry validated before, with this code (registry/listing.py)
            return _print_list(rows)
    from medmat_builder.registry import RegistryError, load_registry

    if args.action == "check":
        try:
            reg = load_registry(args.registry, cache=True)
        except RegistryError as exc:
            if isinstance(exc, UsageError):
                raise
            first, _, rest = str(exc).partition(": ")  # `check` lists every problem, one per line
            print(f"error: {first}:\n  " + rest.replace("\n", "\n  "), file=sys.stderr)
            return 1
        return _check(reg) or (_check_raw(reg, args.data_dir) if args.data_dir is not None else 0)
    reg = load_registry(args.registry, cache=True)  # an invalid registry is reported by the CLI (cli/errors.py)
    if args.action == "coverage":
        return _coverage(reg, args)
    if args.action == "list":
        return _list(reg, args)
    return _show(reg, args)


def _check(reg: Registry) -> int:
    unknown = [s.key for s in reg.sources if s.license_is_unknown]
    print(f"ok: {len(reg.subsets)} subsets, {len(reg.sources)} sources")
    kinds: dict[str, int] = {}
    for s in reg.sources:
        kinds[s.layout.kind] = kinds.get(s.layout.kind, 0) + 1
    print("layout kinds: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
    keys: dict[str, int] = {}
    for s in reg.sources:
        declared = s.groups.declared if s.groups is not None else "undeclared"
        keys[declared] = keys.get(declared, 0) + 1
    print("subject keys (groups): " + ", ".join(f"{k}={v}" for k, v in sorted(keys.items())))
    if unknown:
        print(f"warning: license unknown for {len(unknown)} sources: {', '.join(unknown)}")
    return 0


def _check_raw(reg: Registry, raw: Path) -> int:
    """Which sources are unpacked under ``raw``; a missing one whose name comes close to a folder there is named."""
    from medmat_builder.layouts.misses import close_names
    from medmat_builder.safe_paths import STATE_DIR

    if not raw.is_dir():
        raise UsageError(f"--data-dir {raw} {'is not a folder' if raw.exists() else 'does not exist'}")
    folders = sorted(p.name for p in raw.iterdir() if p.is_dir() and not p.name.startswith("."))
    taken = {s.folder for s in reg.sources}
    present, missing, hints = [], [], []
    for s in sorted(reg.sources, key=lambda s: s.number):
        folder = raw / s.folder
        if folder.is_dir() and any(e.name != STATE_DIR for e in folder.iterdir()):
            present.append(s.key)
            continue
        missing.append(s.key)
        near = [n for n in close_names(s.folder, folders) if n not in taken or n.lower() == s.folder.lower()]
        if near:
            hints.append(f"raw folder {folder} not found; did you mean {raw / near[0]}? ({s.key})")
    print(f"raw data in {raw}: {len(present)} of {len(reg.sources)} sources unpacked"
          + (f"; missing: {' '.join(missing)}" if missing else ""))
    for line in hints:
        print(f"warning: {line}")
    return 0


def _coverage(reg: Registry, args: argparse.Namespace) -> int:
    from medmat_builder.registry.coverage import coverage_json, coverage_markdown, write_document

    if args.write is not None:
        changed = write_document(reg, args.write)
        print(f"{args.write}: coverage section {'regenerated' if changed else 'already up to date'}")
        return 0
    if args.format == "json":
        print(json.dumps(coverage_json(reg), indent=2))
    else:
        print(coverage_markdown(reg), end="")
    return 0


def _list(reg: Registry, args: argparse.Namespace) -> int:
    sources = reg.sources_of(args.subset) if args.subset else sorted(reg.sources, key=lambda s: s.number)
    return _print_list(sources)


def _print_list(sources: Iterable[Source | listing.Row]) -> int:
    """One line per source: number, key, access, redistributable, license, subsets."""
    print(f"{'no.':>4}  {'key':<24} {'access':<12} {'redist.':<7} {'license':<28} subsets")
    for s in sources:
        print(f"{s.number:>4}  {s.key:<24} {s.access:<12} {'yes' if s.redistributable else 'no':<7} "
              f"{s.license[:28]:<28} {' '.join(s.subsets)}")
    return 0


def _show(reg: Registry, args: argparse.Namespace) -> int:
    s = reg.source(args.key)  # an unknown key: one line naming the closest keys, exit 2
    print(f"{s.name}  (key {s.key}, paper No. {s.number})")
    print(f"  homepage:        {s.homepage}")
    print(f"  license:         {s.license}" + (f"  <{s.license_url}>" if s.license_url else ""))
    print(f"  access:          {s.access}")
    print(f"  redistributable: {'yes' if s.redistributable else 'no'}")
    print(f"  subsets:         {', '.join(s.subsets)}")
    print(f"  raw folder:      RAW/{s.folder}/")
    print(f"  layout:          {s.layout.kind}")
    print(f"  subjects:        {s.groups.describe() if s.groups is not None else 'not declared'}")
    for spec in s.layout.split_lists:
        print(f"  split list:      {spec.path}" + (f" (column {spec.column})" if spec.column else ""))
    print("  how to obtain:")
    print(textwrap.indent(s.obtain.strip(), "    "))
    print("  labels (raw -> canonical):")
    for raw, canon in s.labels.items():
        print(f"    {raw!r} -> {canon if canon is not None else '(dropped)'}")
    if s.unlisted_labels == "drop":
        print("    any other raw label -> (dropped, counted in the build report's ignored_labels)")
    if s.notes:
        print("  notes:")
        print(textwrap.indent(textwrap.fill(s.notes.strip(), 96), "    "))
    print("  evidence (facts confirmed by public material):")
    for fact, text in s.evidence.items():
        print(textwrap.indent(textwrap.fill(f"{fact}: {' '.join(text.split())}", 96, subsequent_indent="  "), "    "))
    if not s.evidence:
        print("    (none)")
    print("  unverified facts (and what was searched):")
    for fact, text in s.unverified.items():
        print(textwrap.indent(textwrap.fill(f"{fact}: {' '.join(text.split())}", 96, subsequent_indent="  "), "    "))
    if not s.unverified:
        print("    (none: every fact has evidence)")
    return 0
