"""``medmat fetch [KEY ...] --data-dir RAW``: download, verify and unpack the openly downloadable sources.

Sources that need a login, an application or a manual download get their steps printed instead.
Each source is unpacked into RAW/<key>/, which must be new, empty or a folder that `medmat fetch`
unpacked before; anything else is refused before any download. Archives over the unpack limits
(likely decompression bombs) are refused; raise the limits with the flags below for a genuine one.

Exit status: 0 when every requested download is in place, 1 when one failed (the message says why
and what to do) or the registry is invalid, 2 for an unknown key or subset (the closest are named),
a refused folder or a registry file that is not there.

``medmat fetch [KEY ...] --check FILE ...`` checks archives downloaded by hand against the
checksums the registry pins (sha256 and/or md5), matching each file to a download by name or by
checksum (without KEY, among every source); nothing is downloaded. Exit status 0 when every file is
verified, 1 otherwise (mismatch, no pinned checksum, not a known download, no such file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

from medmat_builder.cli.main import common_options, summary
from medmat_builder.scripts import UsageError

#: ``fetch.ExtractLimits()``, spelled out so that reading the options imports no archive or network
#: library (tests/test_cli_errors.py checks that they agree).
DEFAULT_LIMITS = SimpleNamespace(max_bytes=256 * 2**30, max_members=2_000_000, max_ratio=200.0, ratio_floor=100 * 2**20)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fetch",
        parents=[common_options()],
        help=summary("fetch"),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("keys", nargs="*", metavar="KEY", help="source keys (default: every source)")
    p.add_argument("--subset", action="append", default=[], metavar="subset_NN",
                   help="also fetch the sources of this config (repeatable)")
    p.add_argument("--data-dir", type=Path, metavar="RAW", help="raw data folder (needed unless --check)")
    p.add_argument("--check", nargs="+", type=Path, metavar="FILE",
                   help="only check these hand-downloaded archives against the pinned sha256/md5")
    p.add_argument("--allow-unpinned", action="store_true",
                   help="download files with no pinned sha256 or md5 in the registry (the hashes are printed)")
    p.add_argument("--retries", type=int, default=3,
                   help="resumed attempts after a dropped connection, besides the first (default: 3; 0: try once)")
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    d = DEFAULT_LIMITS
    p.add_argument("--max-unpacked-gb", type=float, default=d.max_bytes / 2**30, metavar="GB",
                   help=f"refuse an archive that unpacks to more than this (default: {d.max_bytes / 2**30:g} GiB)")
    p.add_argument("--max-members", type=int, default=d.max_members, metavar="N",
                   help=f"refuse an archive with more entries than this (default: {d.max_members:,})")
    p.add_argument("--max-ratio", type=float, default=d.max_ratio, metavar="R",
                   help=f"refuse an archive that unpacks to more than R times its size, once past "
                        f"{d.ratio_floor // 2**20} MiB (default: {d.max_ratio:g})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medmat_builder.fetch import ExtractLimits, FetchError, check_unpack_folder, fetch_source
    from medmat_builder.registry import load_registry
    from medmat_builder.safe_paths import UnsafePathError

    if args.retries < 0:
        raise UsageError(f"--retries {args.retries}: give 0 (one attempt) or more")
    reg = load_registry(args.registry)  # an invalid registry is reported by the CLI (cli/errors.py)
    chosen = [reg.source(k) for k in args.keys]  # an unknown name: one line with the closest, exit 2
    for name in args.subset:
        chosen += reg.sources_of(name)
    if not args.keys and not args.subset:
        chosen = sorted(reg.sources, key=lambda s: s.number)
    seen: set[str] = set()
    sources = [s for s in chosen if not (s.key in seen or seen.add(s.key))]
    if args.check:
        return run_check(sources, args.check)
    if args.data_dir is None:
        raise UsageError("give --data-dir RAW (the folder that holds RAW/<key>/), or --check FILE ... to check archives")
    if args.data_dir.exists() and not args.data_dir.is_dir():
        raise UsageError(f"--data-dir {args.data_dir} is a file; give the folder that holds (or will hold) RAW/<key>/")
    refused = []
    for src in sources:  # every folder rule before any download
        if src.downloads:
            try:
                check_unpack_folder(src, args.data_dir)
            except UnsafePathError as exc:
                refused.append(f"error: {exc}")
    if refused:
        print("\n".join(refused), file=sys.stderr)
        return 2
    limits = ExtractLimits(max_bytes=int(args.max_unpacked_gb * 2**30), max_members=args.max_members,
                           max_ratio=args.max_ratio)

    manual, failed, ok = [], [], []
    for src in sources:
        try:
            result = fetch_source(src, args.data_dir, allow_unpinned=args.allow_unpinned,
                                  retries=args.retries, timeout=args.timeout, log=print, limits=limits)
        except FetchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed.append(src.key)
            continue
        if result.status == "manual":
            print(result.message)
            manual.append(src.key)
        else:
            print(f"{src.key}: {result.status} ({args.data_dir / src.folder}/)")
            ok.append(src.key)
    print(f"\nfetched or present: {len(ok)}; need manual steps: {len(manual)}; failed: {len(failed)}")
    if manual:
        print("manual: " + " ".join(manual) + "  (`medmat sources show KEY` repeats the steps)")
    if failed:
        print("failed: " + " ".join(failed) + "  (rerun to resume; see the errors above)")
        return 1
    return 0


def run_check(sources: list, files: list[Path]) -> int:
    """Check each file against the first of ``sources`` that knows it (by name or checksum)."""
    from medmat_builder.fetch import check_files

    ok = True
    for path in files:
        results = [check_files(src, [path])[0] for src in sources]
        known = [r for r in results if r.status != "unknown"]
        result = known[0] if known else results[0] if len(sources) == 1 else None
        if result is None:
            print(f"{path.name}: not a download of any {'of these sources' if len(sources) > 1 else 'source'} "
                  "by name or checksum")
            ok = False
            continue
        print(("ok: " if result.ok else "FAILED: ") + result.message)
        ok = ok and result.ok
    return 0 if ok else 1
