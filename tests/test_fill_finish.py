""":meth:`Fill.finish` counts the candidates never needed as one-by-one drops would."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from medmat_builder.build.candidates import Candidate
from medmat_builder.build.fill import Fill
from medmat_builder.records import RawRecord
from medmat_builder.report import ConfigReport


def _cand(src: str, i: int) -> Candidate:
    source = SimpleNamespace(key=src)
    return Candidate(RawRecord(src, f"{src}/{i}.png", f"{src}/{i}.png", ("a",)), source,  # type: ignore[arg-type]
                     Path("."), ("a",), "train", f"id-{src}-{i}", "a")


def test_finish_counts_the_surplus_as_one_drop_each():
    sources = ["s1", "s2", "s3"]
    buckets = {key: [_cand(sources[(i * 7 + n) % 3 if key != "c" else 2], i * 10 + n) for i in range(n)]
               for n, key in ((30, "a"), (4, "b"), (9, "c"), (0, "d"))}
    report = ConfigReport(config="x")
    report.ledger("s2").drop("over_cap", "earlier", "taken back")  # examples there already
    report.ledger("s3").drop("balance", "other reason")
    reference = report.model_copy(deep=True)
    fill = Fill(buckets, {}, None, None, None, report, None)  # type: ignore[arg-type]
    fill.pos.update(a=3, b=4, c=1)
    kept = fill.finish("over_cap")

    for key, queue in buckets.items():  # the reference: every candidate left, one drop each
        for cand in queue[{"a": 3, "b": 4, "c": 1, "d": 0}[key]:]:
            reference.ledger(cand.source.key).drop("over_cap", cand.record.ref)
    assert report.model_dump_json() == reference.model_dump_json()  # in the same order too
    assert report.sources["s1"].dropped["over_cap"] > 5  # past the examples
    assert fill.dropped == {"over_cap": 27 + 8} and kept == {k: [] for k in buckets}
    assert fill.pos == {k: len(v) for k, v in buckets.items()}
    again = Fill(buckets, {}, None, None, None, report, None)  # type: ignore[arg-type]
    assert again.finish("balance") == {k: [] for k in buckets}
