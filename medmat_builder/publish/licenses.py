"""Licenses of an export: what the sources' terms ask of a user, the Hub's license ids, and ``licenses.csv``."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from medmat_builder.registry import Registry, Source
from medmat_builder.report import BuildReport

#: The card's ``license_name`` when the sources' licenses differ (the terms are in ``licenses.csv``).
LICENSE_NAME = "medmat-per-source"


#: SPDX ids (upper-cased) that the Hub's ``license:`` field knows, and the Hub's spelling of each.
HUB_LICENSE_IDS: dict[str, str] = {
    s.upper(): s
    for s in (
        "apache-2.0", "mit", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0",
        "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
        "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "odbl", "odc-by", "pddl",
        "bsd-2-clause", "bsd-3-clause", "gpl-3.0", "cdla-permissive-2.0", "cdla-sharing-1.0",
    )
}
HUB_LICENSE_IDS["ODC-BY-1.0"] = "odc-by"
HUB_LICENSE_IDS["ODBL-1.0"] = "odbl"
HUB_LICENSE_IDS["PDDL-1.0"] = "pddl"
HUB_LICENSE_IDS["UNKNOWN"] = "unknown"  # the Hub's own id for terms nobody could establish


@dataclass(frozen=True)
class Terms:
    """What a set of licenses asks of a user, as flags for the card's summary."""

    licenses: tuple[str, ...]
    non_commercial: bool = False
    share_alike: bool = False
    no_derivatives: bool = False
    unknown: bool = False

    @staticmethod
    def _yes_no(flag: bool, unknown: bool) -> str:
        return "yes" if flag else ("unknown" if unknown else "no")

    @property
    def non_commercial_text(self) -> str:
        return self._yes_no(self.non_commercial, self.unknown)

    @property
    def share_alike_text(self) -> str:
        return self._yes_no(self.share_alike, self.unknown)

    @property
    def no_derivatives_text(self) -> str:
        return self._yes_no(self.no_derivatives, self.unknown)


_NC = re.compile(r"(^|[-\s(])NC([-\s)]|$)|non-?commercial|research[- ]use|research only|research and educational", re.I)


_SA = re.compile(r"(^|[-\s(])SA([-\s)]|$)|share-?alike|CDLA-SHARING", re.I)


_ND = re.compile(r"(^|[-\s(])ND([-\s)]|$)|no[- ]derivatives", re.I)


def license_terms(licenses: list[str] | tuple[str, ...]) -> Terms:
    """Summarize licenses: non-commercial (incl. research-only terms), share-alike, no-derivatives, unknown."""
    lics = tuple(sorted(set(licenses)))
    return Terms(
        licenses=lics,
        non_commercial=any(_NC.search(x) for x in lics),
        share_alike=any(_SA.search(x) for x in lics),
        no_derivatives=any(_ND.search(x) for x in lics),
        unknown=any(x.strip().lower() == "unknown" for x in lics),
    )


def hub_license_id(license: str) -> str | None:
    """The Hub's ``license:`` value for an SPDX id (``CC-BY-4.0`` -> ``cc-by-4.0``), else None."""
    return HUB_LICENSE_IDS.get(license.strip().upper())


def export_sources(registry: Registry, report: BuildReport, names: list[str]) -> list[Source]:
    """The sources that hold rows in the configs ``names`` (by key): a source of a config built with
    ``--partial`` without it, or whose every record was dropped, has no rows and no terms in the export."""
    keys = sorted({k for n in names for k, led in report.configs[n].sources.items() if led.kept.train + led.kept.test})
    return [registry.source(k) for k in keys]


def hub_licenses(licenses: list[str] | tuple[str, ...]) -> list[str]:
    """The card's ``license`` list: each license's Hub id once, sorted, and ``other`` for terms without one."""
    return sorted({hub_license_id(x) or "other" for x in licenses})


def license_table(registry: Registry, report: BuildReport) -> str:
    """``licenses.csv``: one row per source of the built configs."""
    keys = sorted({k for n in report.configs for k in registry.subset(n).sources})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["source", "number", "name", "license", "license_url", "access", "redistributable", "subsets", "homepage"])
    for k in keys:
        s = registry.source(k)
        w.writerow([k, s.number, s.name, s.license, s.license_url or "", s.access, str(s.redistributable).lower(),
                    " ".join(s.subsets), s.homepage])
    return buf.getvalue()
