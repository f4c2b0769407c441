"""The closing table of each config a build wrote: per source, raw records, kept per split, dropped per reason.

One block per config, printed by ``medmat build`` after the build (plain text, the same whether or not
standard error is a terminal)::

    subset_01  kept: train 26, test 3  dropped: 4
      source          raw  train  test  dropped
      toy_folders      21     14     2  balance=2, unused_label=1
      toy_table        12     12     1  balance=1
      total            33     26     3  balance=3, unused_label=1

The numbers are the report's ledger (``build_report.json``), so each row adds up:
``raw = train + test + dropped``. Missing sources (``--partial``) show ``missing``.
"""

from __future__ import annotations

from collections.abc import Iterable

from medmat_builder.report import BuildReport, ConfigReport


def _drops(dropped: dict[str, int]) -> str:
    return ", ".join(f"{reason}={n}" for reason, n in sorted(dropped.items()) if n) or "-"


def config_table(name: str, rep: ConfigReport) -> list[str]:
    """The closing table of config ``name`` (see the module docstring)."""
    kept = rep.num_examples
    drops = rep.dropped()
    width = max([len("source"), len("total"), *(len(k) for k in rep.sources)])
    lines = [f"{name}  kept: train {kept.train}, test {kept.test}  dropped: {sum(drops.values())}",
             f"  {'source':<{width}}  {'raw':>6}  {'train':>6}  {'test':>6}  dropped"]
    raw = train = test = 0
    for key, led in sorted(rep.sources.items()):
        if led.missing:
            lines.append(f"  {key:<{width}}  missing (--partial)")
            continue
        raw, train, test = raw + led.raw, train + led.kept.train, test + led.kept.test
        lines.append(f"  {key:<{width}}  {led.raw:>6}  {led.kept.train:>6}  {led.kept.test:>6}  {_drops(led.dropped)}")
    lines.append(f"  {'total':<{width}}  {raw:>6}  {train:>6}  {test:>6}  {_drops(drops)}")
    return lines


def config_tables(report: BuildReport, names: Iterable[str]) -> list[str]:
    """The closing tables of ``names`` (configs of ``report``), one block each, a blank line between."""
    lines: list[str] = []
    for name in names:
        if name in report.configs:
            if lines:
                lines.append("")
            lines += config_table(name, report.configs[name])
    return lines
