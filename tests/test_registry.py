"""Registry schema: valid files parse, broken ones fail with the entry and field named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medmat_builder.registry import RegistryError, parse_registry

MINI = (Path(__file__).parent / "fixtures" / "mini_registry.yaml").read_text()


def _mutate(fn) -> str:
    data = yaml.safe_load(MINI)
    fn(data)
    return yaml.safe_dump(data, sort_keys=False)


def test_mini_registry_parses():
    reg = parse_registry(MINI)
    assert reg.subset("subset_01").triplet == ("X-ray", "Lung", "COVID")
    assert reg.subset("1").name == "subset_01"
    assert [s.key for s in reg.sources_of("subset_01")] == ["toy_folders", "toy_table"]


def test_unknown_subset_lookup_says_what_exists():
    with pytest.raises(KeyError, match="subset_01 .. subset_02"):
        parse_registry(MINI).subset("subset_99")


@pytest.mark.parametrize(
    "mutation, message",
    [
        (lambda d: d["sources"][0].pop("license"), "source toy_folders: field 'license': Field required"),
        (lambda d: d["sources"][0].update(homepage="ftp://x"), "source toy_folders: field 'homepage'"),
        (lambda d: d["sources"][0].update(colour="red"), "source toy_folders: field 'colour': Extra inputs"),
        (lambda d: d["subsets"][0]["instructions"].pop(), "subset subset_01: field 'instructions'"),
        (lambda d: d["subsets"][0]["sources"].append("nope"), "names unknown source 'nope'"),
        (lambda d: d["sources"][1]["labels"].update(covid="Covid"), "maps 'covid' to 'Covid', which is not a label"),
        (lambda d: d["sources"][1].update(key="toy_folders"), "key defined more than once"),
        (lambda d: d["sources"][0]["layout"].update(kind="zipfile"), "source toy_folders: field 'layout'"),
        (lambda d: d["sources"][0]["layout"].update(images="{split}/*.jpeg"), "must capture {label}"),
        (lambda d: d["sources"][0].update(citation="Toy et al."), "BibTeX"),
    ],
)
def test_broken_registry_names_entry_and_field(mutation, message):
    with pytest.raises(RegistryError) as err:
        parse_registry(_mutate(mutation), origin="sources.yaml")
    assert message in str(err.value)
    assert "sources.yaml" in str(err.value)


def test_duplicate_yaml_keys_are_refused():
    text = MINI.replace("    license: CC0-1.0\n", "    license: CC0-1.0\n    license: MIT\n")
    with pytest.raises(RegistryError, match="duplicate key 'license'"):
        parse_registry(text)


def test_malformed_yaml_and_unsafe_tags_are_refused():
    with pytest.raises(RegistryError, match="not valid YAML"):
        parse_registry("subsets: [\n")
    with pytest.raises(RegistryError, match="not valid YAML"):
        parse_registry("!!python/object/apply:os.system ['true']")


# ----------------------------------------------------------------------------- raw label matching
def _label_case(labels: dict) -> str:
    return _mutate(lambda d: d["sources"][1].update(labels=labels))


def test_raw_labels_match_whatever_case_spaces_and_unicode_form():
    from collections import Counter

    from medmat_builder.build.labels import map_labels
    from medmat_builder.records import RawRecord

    reg = parse_registry(_label_case({"Homogeneous": "Normal", "NV": "COVID-19", "Névus": "Pneumonia",
                                      "ignored": None}))
    sub, src = reg.subset("subset_01"), reg.source("toy_table")

    def canon(raw: str):
        unknown: dict = {}
        return map_labels(sub, src, RawRecord("toy_table", "r", "x.png", (raw,)), unknown, Counter()), unknown

    assert canon("homogeneous")[0] == (("Normal",), None)  # ICPR 2014 spells classes capitalised, 2012 not
    assert canon("HOMOGENEOUS ")[0] == (("Normal",), None)
    assert canon(" NV ")[0] == (("COVID-19",), None)
    assert canon("Ne\u0301vus")[0] == (("Pneumonia",), None)  # decomposed accent vs the composed YAML key
    assert canon("\uff2e\uff36")[0] == (("COVID-19",), None)  # full-width letters (NFKC)
    assert canon(" Ignored")[0] == ((), "unused_label")
    (labels, reason), unknown = canon("Homogenous")  # a real misspelling is still unknown
    assert reason == "unknown_label" and unknown == {"Homogenous": ["r"]}


def test_raw_labels_that_collide_after_normalising_must_agree():
    parse_registry(_label_case({"hypodontia": "Normal", "Hypodontia": "Normal", "covid": "COVID-19"}))  # same: fine
    with pytest.raises(RegistryError) as err:
        parse_registry(_label_case({"Homogeneous": "Normal", " homogeneous": "COVID-19"}), origin="sources.yaml")
    assert "source toy_table" in str(err.value)
    assert "'Homogeneous' -> 'Normal', ' homogeneous' -> 'COVID-19'" in str(err.value)
    with pytest.raises(RegistryError, match="same label once case"):
        parse_registry(_label_case({"Ne\u0301vus": "Normal", "N\u00e9vus": "Pneumonia"}))
