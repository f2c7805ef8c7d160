"""Text ontologies: the classes to label, the prompts that describe them, and their thresholds.

An ontology is a YAML file::

    name: security                 # optional, shown in reports
    default_threshold: 0.25        # optional, used by classes without their own threshold
    classes:                       # the order fixes the class ids (0, 1, ...)
      - name: person               # the class name written to the dataset
        prompts: [person, pedestrian, security guard]   # text for zero-shot teachers (>= 1)
        threshold: 0.30            # optional per-class confidence threshold
        aliases: [person]          # optional names of this class in closed-set models (e.g. COCO)

Several prompts map to one class: zero-shot teachers score every prompt and combine the prompts of a class
(see each teacher's docs). Closed-set teachers (a COCO YOLO) map their own class names to ontology classes
through ``aliases``; without ``aliases`` the class name and its prompts are tried.

Example:
    >>> onto = Ontology.from_dict({"classes": [{"name": "person", "prompts": ["person", "human"]}]})
    >>> onto.names, onto.prompts, onto.prompt_class
    (['person'], ['person', 'human'], [0, 0])
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autolabel.core.errors import OntologyError

__all__ = ["Ontology", "OntologyClass", "load_ontology"]

DEFAULT_THRESHOLD = 0.25
_TOP_KEYS = {"name", "description", "default_threshold", "classes"}
_CLASS_KEYS = {"name", "prompts", "threshold", "aliases", "description"}


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").split())


@dataclass(frozen=True)
class OntologyClass:
    """One class: its dataset name, the prompts describing it, its threshold and closed-set aliases."""

    name: str
    prompts: tuple[str, ...]
    threshold: float
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ontology:
    """An ordered set of classes. Class ids are positions in :attr:`classes`."""

    classes: tuple[OntologyClass, ...]
    name: str = "ontology"
    source: str | None = field(default=None, compare=False)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> Ontology:
        """Build and validate an ontology from parsed YAML; errors name ``source`` and the key."""

        def fail(key: str, expected: str, found: Any) -> OntologyError:
            shown = repr(found)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            return OntologyError(f"{source}: '{key}' must be {expected}, found {shown}")

        if not isinstance(data, Mapping):
            raise fail("<top level>", "a mapping with a 'classes' list", data)
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise OntologyError(
                f"{source}: unknown key(s) {sorted(map(str, unknown))}; valid keys are {sorted(_TOP_KEYS)}"
            )
        default = data.get("default_threshold", DEFAULT_THRESHOLD)
        if isinstance(default, bool) or not isinstance(default, (int, float)) or not 0 <= default <= 1:
            raise fail("default_threshold", "a number between 0 and 1", default)
        raw = data.get("classes")
        if not isinstance(raw, list) or not raw:
            raise fail("classes", "a non-empty list of classes", raw)

        classes: list[OntologyClass] = []
        seen_names: set[str] = set()
        seen_prompts: dict[str, str] = {}
        for i, item in enumerate(raw):
            where = f"classes[{i}]"
            if isinstance(item, str):  # shorthand: "- person"
                item = {"name": item}
            if not isinstance(item, Mapping):
                raise fail(where, "a mapping with 'name' and 'prompts'", item)
            bad = set(item) - _CLASS_KEYS
            if bad:
                raise OntologyError(
                    f"{source}: unknown key(s) {sorted(map(str, bad))} in {where}; "
                    f"valid keys are {sorted(_CLASS_KEYS)}"
                )
            name = item.get("name")
            if not isinstance(name, str) or not name.strip():
                raise fail(f"{where}.name", "a non-empty string", name)
            name = name.strip()
            where = f"classes[{i}] ({name})"
            if name in seen_names:
                raise OntologyError(f"{source}: class name '{name}' appears twice; class names must be unique")
            seen_names.add(name)
            prompts = item.get("prompts", [name])
            if isinstance(prompts, str):
                prompts = [prompts]
            if (
                not isinstance(prompts, list)
                or not prompts
                or not all(isinstance(p, str) and p.strip() for p in prompts)
            ):
                raise fail(f"{where}.prompts", "a non-empty list of non-empty strings", prompts)
            prompts = [p.strip() for p in prompts]
            for p in prompts:
                other = seen_prompts.get(_norm(p))
                if other is not None and other != name:
                    raise OntologyError(
                        f"{source}: prompt '{p}' is used by both '{other}' and '{name}'; "
                        "a prompt must describe one class"
                    )
                seen_prompts[_norm(p)] = name
            threshold = item.get("threshold", default)
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
                raise fail(f"{where}.threshold", "a number between 0 and 1", threshold)
            aliases = item.get("aliases", [])
            if isinstance(aliases, str):
                aliases = [aliases]
            if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
                raise fail(f"{where}.aliases", "a list of class names of closed-set models", aliases)
            classes.append(
                OntologyClass(
                    name=name,
                    prompts=tuple(dict.fromkeys(prompts)),
                    threshold=float(threshold),
                    aliases=tuple(a.strip() for a in aliases),
                )
            )
        onto_name = data.get("name", Path(source).stem if source != "<dict>" else "ontology")
        if not isinstance(onto_name, str):
            raise fail("name", "a string", onto_name)
        return cls(classes=tuple(classes), name=onto_name, source=source)

    @classmethod
    def from_names(cls, names: Sequence[str], threshold: float = DEFAULT_THRESHOLD) -> Ontology:
        """Ontology with one prompt per class, the class name itself."""
        return cls.from_dict({"classes": list(names), "default_threshold": threshold})

    # -- views --------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Class names in id order."""
        return [c.name for c in self.classes]

    @property
    def prompts(self) -> list[str]:
        """Every prompt of every class, flattened in class order."""
        return [p for c in self.classes for p in c.prompts]

    @property
    def prompt_class(self) -> list[int]:
        """For each entry of :attr:`prompts`, the id of its class."""
        return [i for i, c in enumerate(self.classes) for _ in c.prompts]

    @property
    def thresholds(self) -> list[float]:
        return [c.threshold for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    def class_id(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise OntologyError(f"class '{name}' is not in the ontology; classes are {self.names}") from None

    def map_model_classes(self, model_names: Mapping[int, str] | Sequence[str]) -> dict[int, int]:
        """Map a closed-set model's class ids to ontology ids.

        A model class matches an ontology class when its name equals (case and ``_`` insensitive) one of
        the class's ``aliases``, or, for classes without aliases, its name or one of its prompts.
        """
        if not isinstance(model_names, Mapping):
            model_names = dict(enumerate(model_names))
        keys: dict[str, int] = {}
        for cid, c in enumerate(self.classes):
            for key in c.aliases or (c.name, *c.prompts):
                keys.setdefault(_norm(key), cid)
        return {int(mid): keys[_norm(n)] for mid, n in model_names.items() if _norm(n) in keys}

    def with_threshold(self, threshold: float) -> Ontology:
        """A copy with every class threshold set to ``threshold`` (e.g. 0.001 for mAP evaluation)."""
        if not 0 <= threshold <= 1:
            raise OntologyError(f"threshold must be between 0 and 1, found {threshold}")
        return Ontology(
            classes=tuple(
                OntologyClass(c.name, c.prompts, float(threshold), c.aliases) for c in self.classes
            ),
            name=self.name,
            source=self.source,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "classes": [
                {"name": c.name, "prompts": list(c.prompts), "threshold": c.threshold, "aliases": list(c.aliases)}
                for c in self.classes
            ],
        }

    def fingerprint(self) -> str:
        """A short hash of names, prompts and aliases (thresholds excluded) identifying the ontology."""
        d = [{"name": c.name, "prompts": list(c.prompts), "aliases": list(c.aliases)} for c in self.classes]
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def load_ontology(path: str | Path) -> Ontology:
    """Read and validate an ontology YAML file.

    Raises:
        OntologyError: the file is missing, not YAML, or a key is invalid (the message names file and key).
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise OntologyError(f"ontology file '{p}' not found (expected a YAML file with a 'classes' list)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise OntologyError(f"{p}: invalid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise OntologyError(f"{p}: not a UTF-8 text file (expected a YAML ontology)") from None
    return Ontology.from_dict(data, source=str(p))
