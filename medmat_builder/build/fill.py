"""Fill one split's quotas key by key, in the candidates' seeded order, opening images only as they are needed.

An image that cannot be used (corrupt, a duplicate or near duplicate of one already kept, a label
conflict, a detection record without any box) is counted and the next candidate of its key is taken,
so quotas are met while reads stay close to the kept bytes. A kept image can be taken back later (a
label conflict found in a later image); :meth:`Fill.run` then tops its key up again.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Generator, Iterator

from medmat_builder.build.candidates import Candidate, Selected
from medmat_builder.build.dedup import KeptImage, SeenImages
from medmat_builder.build.loader import Loader, LoadJob, LoadResult, Lookahead
from medmat_builder.build.spool import Spool
from medmat_builder.records import Box
from medmat_builder.registry import Subset
from medmat_builder.report import EXAMPLES_PER_REASON, ConfigReport


class Fill:
    """Fills one split's quotas key by key, in the candidates' seeded order, opening images only as needed.

    A kept image can be taken back later (:meth:`take_back`, a label conflict); :meth:`run` then tops
    its key up from the candidates left. :meth:`finish` counts the candidates that were never needed.
    ``started`` is called once, when the first images are on their way (see :class:`Lookahead`).
    """

    def __init__(self, buckets: dict[str, list[Candidate]], quotas: dict[str, int], loader: Loader,
                 seen: SeenImages, spool: Spool, report: ConfigReport, subset: Subset,
                 started: Callable[[], object] | None = None):
        self.started = started
        self.queues = buckets
        self.need = {k: quotas.get(k, 0) for k in buckets}
        self.kept: dict[str, list[tuple[Selected, Candidate]]] = {k: [] for k in buckets}
        self.pos = {k: 0 for k in buckets}
        self.loader, self.seen, self.spool, self.report, self.subset = loader, seen, spool, report, subset
        self.dropped: Counter = Counter()  # this split's drops by reason (for the "would be empty" message)

    def _open(self, key: str) -> bool:
        return len(self.kept[key]) < self.need[key] and self.pos[key] < len(self.queues[key])

    def short(self) -> bool:
        """Is some key below its quota with candidates left (after a take-back)?"""
        return any(self._open(k) for k in self.queues)

    def run(self) -> None:
        while keys := [k for k in sorted(self.queues) if self._open(k)]:
            # one stream for the round's keys, taken key by key: images are decoded ahead across a key's end
            # (as many of a key as its quota still needs, then the next key's), not past its quota
            started, self.started = self.started, None
            ahead = Lookahead(self.loader, [self._jobs(key) for key in keys],
                              lambda i: self.need[keys[i]] - len(self.kept[keys[i]]), self.spool.ref, started)
            try:
                for i, key in enumerate(keys):
                    self._top_up(key, ahead.take(i))
            finally:
                ahead.close()

    def _jobs(self, key: str) -> Iterator[LoadJob]:
        """The load jobs of ``key``'s candidates from the first not yet taken (each made when submitted)."""
        detection = not self.subset.is_classification
        # the same file as ``c.root / c.record.image``; ``os.path.join`` skips pathlib's parsing per image
        return (LoadJob(os.path.join(str(c.root), c.record.image), str(c.root), c.record, detection)
                for c in self.queues[key][self.pos[key]:])

    def _top_up(self, key: str, results: Generator[LoadResult, None, None]) -> None:
        detection = not self.subset.is_classification
        queue, got = self.queues[key][self.pos[key]:], self.kept[key]
        for cand, res in zip(queue, results):
            self.pos[key] += 1
            ledger = self.report.ledger(cand.source.key)
            if res.error:
                ledger.drop(res.error, cand.record.ref, res.detail)
                self.dropped[res.error] += 1
                continue
            before = Counter(ledger.dropped)
            if self.seen.check(res, cand, ledger, self.subset.name):
                self.dropped.update(Counter(ledger.dropped) - before)
                continue
            labels = cand.labels
            boxes: tuple[Box, ...] = ()
            if detection:
                canonical = {b.label: cand.source.lookup_label(b.label)[1] for b in res.boxes}
                boxes = tuple(
                    Box(canonical[b.label], b.x1, b.y1, b.x2, b.y2)  # type: ignore[arg-type]
                    for b in res.boxes
                    if canonical[b.label] is not None
                )
                if not boxes:
                    ledger.drop("no_annotation", cand.record.ref)
                    self.dropped["no_annotation"] += 1
                    continue
                labels = tuple(dict.fromkeys(b.label for b in boxes))
            if res.raw is not None:  # the raw file as it is: read from there when written, not spooled
                off, length = -1, res.raw.length
            else:
                off, length = res.spooled or self.spool.put(res.data)  # type: ignore[arg-type]
            item = (Selected(cand.id, cand.source.key, cand.split, labels, off, length, res.width, res.height, boxes,
                             res.pixel_hash, res.raw),
                    cand)
            got.append(item)
            self.seen.add(res, KeptImage(f"{cand.source.key}:{cand.record.ref}", frozenset(cand.labels), self, key, item))
            if len(got) >= self.need[key]:
                break
        results.close()

    def take_back(self, key: str, item: tuple[Selected, Candidate], detail: str) -> None:
        """Remove a kept image (a label conflict) and count it; its key is topped up by the next :meth:`run`."""
        items = self.kept[key]
        del items[next(i for i, it in enumerate(items) if it is item)]  # in place: a top-up may hold the list
        cand = item[1]
        self.report.ledger(cand.source.key).drop("label_conflict", cand.record.ref, detail)
        self.dropped["label_conflict"] += 1

    def relevel(self) -> None:
        """Strict test balance: cut every label down to the shortest one (duplicates, corrupt files, conflicts)."""
        if not self.kept:
            return
        floor = min(len(v) for v in self.kept.values())
        for key, items in self.kept.items():
            for item in items[floor:]:
                self.report.ledger(item[1].source.key).drop("balance", item[1].record.ref, "test re-levelled")
                self.dropped["balance"] += 1
                self.seen.release(item)
            del items[floor:]
            self.need[key] = min(self.need[key], floor)

    def finish(self, surplus_reason: str) -> dict[str, list[tuple[Selected, Candidate]]]:
        """Count the candidates never needed as ``surplus_reason``; return the kept records per key.

        Each ledger is handed them one by one (:meth:`SourceLedger.drop`) only until it holds its examples of
        that reason; the rest (100,000s at 100k files) are only counted, and added to it in one sum."""
        full: set[str] = set()  # sources whose examples of the reason are all there
        extra: Counter[str] = Counter()  # per such source, the candidates counted past them
        for key, queue in self.queues.items():
            left = queue[self.pos[key]:]
            for cand in left:
                src = cand.source.key
                if src in full:
                    extra[src] += 1
                    continue
                ledger = self.report.ledger(src)
                ledger.drop(surplus_reason, cand.record.ref)
                if len(ledger.examples[surplus_reason]) >= EXAMPLES_PER_REASON:
                    full.add(src)
            if left:
                self.dropped[surplus_reason] += len(left)
            self.pos[key] = len(queue)
        for src, n in extra.items():
            self.report.ledger(src).dropped[surplus_reason] += n
        return self.kept
