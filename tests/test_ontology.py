from __future__ import annotations

import pytest

from autolabel.core.errors import OntologyError
from autolabel.core.ontology import Ontology, load_ontology
from tests.conftest import ROOT


def test_security_ontology_ships_the_issue_classes():
    onto = load_ontology(ROOT / "ontologies" / "security.yaml")
    assert onto.names == ["person", "car", "truck", "bus", "bicycle", "motorcycle", "dog", "cat",
                          "backpack", "handbag", "suitcase", "package"]
    assert all(0 < t < 1 for t in onto.thresholds)
    assert onto.classes[0].threshold == 0.35
    # several prompts map to one class
    person_prompts = [p for p, c in zip(onto.prompts, onto.prompt_class) if c == 0]
    assert len(person_prompts) >= 2 and "pedestrian" in person_prompts


def test_every_shipped_ontology_loads():
    for f in sorted((ROOT / "ontologies").glob("*.yaml")):
        assert len(load_ontology(f)) > 0


def test_defaults_and_mapping():
    onto = Ontology.from_dict({
        "default_threshold": 0.4,
        "classes": [
            "person",
            {"name": "vehicle", "prompts": ["car", "truck"], "aliases": ["car", "truck", "bus"]},
            {"name": "package", "prompts": "cardboard box", "threshold": 0.2},
        ],
    })
    assert onto.names == ["person", "vehicle", "package"]
    assert onto.thresholds == [0.4, 0.4, 0.2]
    assert onto.prompts == ["person", "car", "truck", "cardboard box"]
    assert onto.prompt_class == [0, 1, 1, 2]
    coco = {0: "person", 2: "car", 5: "bus", 7: "truck", 24: "backpack", 9: "traffic_light"}
    assert onto.map_model_classes(coco) == {0: 0, 2: 1, 5: 1, 7: 1}
    assert onto.with_threshold(0.001).thresholds == [0.001] * 3
    assert onto.fingerprint() == onto.with_threshold(0.9).fingerprint()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("classes: [", r"invalid YAML at line"),
        ("- a\n- b\n", r"'<top level>' must be a mapping"),
        ("name: x\n", r"'classes' must be a non-empty list"),
        ("classes: []\n", r"'classes' must be a non-empty list"),
        ("classes: [person]\nthreshold: 0.3\n", r"unknown key\(s\) \['threshold'\]; valid keys are"),
        ("classes:\n  - name: person\n    promts: [a]\n", r"unknown key\(s\) \['promts'\] in classes\[0\]"),
        ("classes:\n  - prompts: [a]\n", r"'classes\[0\].name' must be a non-empty string"),
        ("classes:\n  - name: a\n  - name: a\n", r"class name 'a' appears twice"),
        ("classes:\n  - name: a\n    prompts: []\n", r"classes\[0\] \(a\).prompts' must be a non-empty list"),
        ("classes:\n  - name: a\n    prompts: [x, 3]\n", r"prompts' must be a non-empty list of non-empty strings"),
        ("classes:\n  - name: a\n    threshold: 1.5\n", r"threshold' must be a number between 0 and 1, found 1.5"),
        ("classes:\n  - name: a\n    threshold: high\n", r"threshold' must be a number between 0 and 1"),
        ("default_threshold: -1\nclasses: [a]\n", r"'default_threshold' must be a number between 0 and 1"),
        ("classes:\n  - name: a\n    prompts: [box]\n  - name: b\n    prompts: [Box]\n",
         r"prompt 'Box' is used by both 'a' and 'b'"),
        ("classes:\n  - name: a\n    aliases: [1]\n", r"aliases' must be a list of class names"),
        ("classes:\n  - 7\n", r"'classes\[0\]' must be a mapping"),
    ],
)
def test_bad_ontology_files(tmp_path, text, match):
    f = tmp_path / "onto.yaml"
    f.write_text(text)
    with pytest.raises(OntologyError, match=match) as e:
        load_ontology(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(OntologyError, match=r"ontology file '.*nope.yaml' not found"):
        load_ontology(tmp_path / "nope.yaml")
    f = tmp_path / "bin.yaml"
    f.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(OntologyError, match="not a UTF-8 text file"):
        load_ontology(f)
