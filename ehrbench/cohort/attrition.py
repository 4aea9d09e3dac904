"""Attrition: how many subjects and triggers each extraction step keeps and drops.

Steps come in the order extraction applies them: the demographic filter, the trigger, the
calendar (`trigger_between`) and `age` filters when set, then for each window its placement
followed by each of its `has` constraints, and last, for a `{value: ...}` label, "label has no
value". A trigger leaves at the first step it fails; a subject leaves at the step where its last
remaining trigger leaves.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ehrbench.errors import EhrbenchError


@dataclass(frozen=True)
class AttritionStep:
    """One step: subjects and triggers entering it and kept by it.

    Trigger counts are None for the demographic filter, which runs before triggers exist, and
    `triggers_in` is None for the trigger step itself.
    """

    step: str
    subjects_in: int
    subjects_kept: int
    triggers_in: int | None
    triggers_kept: int | None

    @property
    def subjects_dropped(self) -> int:
        return self.subjects_in - self.subjects_kept

    @property
    def triggers_dropped(self) -> int | None:
        if self.triggers_in is None or self.triggers_kept is None:
            return None
        return self.triggers_in - self.triggers_kept


@dataclass(frozen=True)
class Attrition:
    """The ordered attrition steps of one extraction."""

    steps: tuple[AttritionStep, ...]

    @classmethod
    def combine(cls, parts: list[Attrition], step_names: list[str]) -> Attrition:
        """Sum per-shard attritions (subjects never span shards) step by step."""
        if not parts:
            return cls(tuple(AttritionStep(n, 0, 0, None, None) for n in step_names))
        steps = []
        for i, name in enumerate(step_names):
            rows = [p.steps[i] for p in parts]
            steps.append(
                AttritionStep(
                    step=name,
                    subjects_in=sum(r.subjects_in for r in rows),
                    subjects_kept=sum(r.subjects_kept for r in rows),
                    triggers_in=_sum_optional(r.triggers_in for r in rows),
                    triggers_kept=_sum_optional(r.triggers_kept for r in rows),
                )
            )
        return cls(tuple(steps))

    @property
    def final_triggers(self) -> int:
        return (self.steps[-1].triggers_kept or 0) if self.steps else 0

    def to_dict(self) -> dict:
        """A JSON-ready dict: one entry per step with the dropped counts spelled out."""
        rows = []
        for s in self.steps:
            row = asdict(s)
            row["subjects_dropped"] = s.subjects_dropped
            row["triggers_dropped"] = s.triggers_dropped
            rows.append(row)
        return {"steps": rows}

    def to_json(self) -> str:
        """The attrition as indented JSON text (stable key order)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> Attrition:
        """The attrition `to_dict` gave (the dropped counts, derived, are recomputed).

        >>> step = AttritionStep("trigger adm", 3, 2, None, 4)
        >>> Attrition.from_dict(Attrition((step,)).to_dict()) == Attrition((step,))
        True
        """
        names = [f.name for f in fields(AttritionStep)]
        return cls(tuple(AttritionStep(**{n: row[n] for n in names}) for row in data["steps"]))

    @classmethod
    def read(cls, path: str | os.PathLike) -> Attrition:
        """Read an attrition JSON file written from `to_json`."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EhrbenchError(f"{path} is not a readable attrition file ({exc}).") from exc

    def render(self) -> str:
        """A fixed-width text table, one line per step."""
        header = ("step", "subjects in", "dropped", "kept", "triggers in", "dropped", "kept")
        lines = [header]
        for s in self.steps:
            lines.append(
                (
                    s.step,
                    str(s.subjects_in),
                    str(s.subjects_dropped),
                    str(s.subjects_kept),
                    _text(s.triggers_in),
                    _text(s.triggers_dropped),
                    _text(s.triggers_kept),
                )
            )
        widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
        out = []
        for row in lines:
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
            out.append("  ".join(cells).rstrip())
        return "\n".join(out) + "\n"


def _sum_optional(values) -> int | None:
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def _text(value: int | None) -> str:
    return "-" if value is None else str(value)
