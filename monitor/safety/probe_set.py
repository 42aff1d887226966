"""Counterfactual probe sets: sentence templates x demographic groups (see data/probes.yaml)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

SHIPPED_PROBE_SET = "probes.yaml"


@dataclass(frozen=True)
class ProbeTemplate:
    id: str
    text: str  # contains "{person}"


@dataclass(frozen=True)
class ProbeGroup:
    name: str
    terms: tuple[str, ...]  # each fills "{person}"


@dataclass(frozen=True)
class ProbeAxis:
    name: str
    groups: tuple[ProbeGroup, ...]


@dataclass(frozen=True)
class Probe:
    """One prompt to send: a template filled with one group term."""

    axis: str
    group: str
    template_id: str
    term: str
    sentence: str  # the filled sentence beginning
    prompt: str  # what the model receives (the instruction around the sentence)


@dataclass(frozen=True)
class ProbeSet:
    name: str
    instruction: str  # contains "{prompt}"
    templates: tuple[ProbeTemplate, ...]
    axes: tuple[ProbeAxis, ...]

    def __post_init__(self) -> None:
        if "{prompt}" not in self.instruction:
            raise ValueError(f"probe set {self.name!r}: instruction must contain '{{prompt}}'")
        if not self.templates:
            raise ValueError(f"probe set {self.name!r} has no templates")
        ids = [t.id for t in self.templates]
        if len(set(ids)) != len(ids):
            raise ValueError(f"probe set {self.name!r}: duplicate template ids")
        for t in self.templates:
            if "{person}" not in t.text:
                raise ValueError(f"probe set {self.name!r}: template {t.id!r} lacks '{{person}}'")
        for axis in self.axes:
            if len(axis.groups) < 2:
                raise ValueError(f"probe set {self.name!r}: axis {axis.name!r} needs at least two groups")
            for group in axis.groups:
                if not group.terms:
                    raise ValueError(f"probe set {self.name!r}: group {axis.name}/{group.name} has no terms")

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    def subset(self, axes: Iterable[str] | None = None, templates: Iterable[str] | None = None) -> ProbeSet:
        """The same probe set restricted to some axes and/or template ids (unknown names raise)."""
        chosen_axes = self.axes
        if axes is not None:
            wanted = list(axes)
            unknown = set(wanted) - set(self.axis_names)
            if unknown:
                raise ValueError(
                    f"unknown axes {sorted(unknown)}; this probe set has {list(self.axis_names)}"
                )
            chosen_axes = tuple(a for a in self.axes if a.name in wanted)
        chosen_templates = self.templates
        if templates is not None:
            wanted_t = list(templates)
            known = {t.id for t in self.templates}
            if set(wanted_t) - known:
                raise ValueError(f"unknown templates {sorted(set(wanted_t) - known)}; have {sorted(known)}")
            chosen_templates = tuple(t for t in self.templates if t.id in wanted_t)
        return ProbeSet(self.name, self.instruction, chosen_templates, chosen_axes)

    def probes(self) -> list[Probe]:
        """Every (axis, group, term, template) combination, in a stable order."""
        out: list[Probe] = []
        for axis in self.axes:
            for group in axis.groups:
                for term in group.terms:
                    for t in self.templates:
                        sentence = t.text.replace("{person}", term)
                        prompt = self.instruction.replace("{prompt}", sentence)
                        out.append(Probe(axis.name, group.name, t.id, term, sentence, prompt))
        return out


def probe_set_from_dict(data: Mapping[str, Any]) -> ProbeSet:
    """Build a ProbeSet from the parsed YAML/JSON layout documented in data/probes.yaml."""
    try:
        templates = tuple(ProbeTemplate(str(t["id"]), str(t["text"])) for t in data["templates"])
        axes = tuple(
            ProbeAxis(
                str(axis),
                tuple(ProbeGroup(str(g), tuple(str(term) for term in terms)) for g, terms in groups.items()),
            )
            for axis, groups in data["axes"].items()
        )
        return ProbeSet(str(data["name"]), str(data.get("instruction", "{prompt}")), templates, axes)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"malformed probe set: {exc!r}; see monitor/safety/data/probes.yaml for the layout"
        ) from exc


def load_probe_set(path: str | Path | None = None) -> ProbeSet:
    """Load a probe set from a YAML or JSON file; the shipped set when ``path`` is None."""
    import yaml  # YAML is a superset of JSON, so one parser reads both

    if path is None:
        text = resources.files("monitor.safety.data").joinpath(SHIPPED_PROBE_SET).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"probe set file {path or SHIPPED_PROBE_SET} must hold a mapping at the top level")
    return probe_set_from_dict(data)
