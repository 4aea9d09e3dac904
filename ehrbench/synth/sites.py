"""Synthetic hospitals ("sites"): the same generative story with a documented shift.

Site `A` is the default hospital of `ehrbench.synth.generator`; its output is unchanged by this
module. Site `B` is a second hospital that differs from `A` in three ways, so a model trained
at one can be tested at the other (external validation):

- **case mix**: an older population. A subject's age at the start of the record is
  18 + 77 * Beta(3.0, 1.4) (mean about 71) instead of 18 + 77 * Beta(2.2, 1.8) (mean about
  60). Everything that depends on age (conditions present, admissions, severity, death) follows.
- **lab measurement frequency**: half of the laboratory results (the `LABS` panel, not vital
  signs) are never drawn, each left out with probability 0.5, so lab features are sparser and a
  lab cohort's measured population is smaller.
- **a coding habit**: temperature is charted in Celsius under MIMIC-IV's Celsius item,
  `LAB//223762//°C`, instead of `LAB//223761//°F` (same readings, converted), so a model that
  reads codes loses its temperature features; the concept maps (`cohorts/concepts/`) map both
  codes to `temperature` in °C.

The shifts draw from their own random streams, so site B's subjects differ from site A's only
through these three changes and what follows from the older case mix.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ehrbench.errors import EhrbenchError, did_you_mean
from ehrbench.synth.events import EventArrays
from ehrbench.synth.vocabulary import CODE_INDEX, CODES, LABS, VOCABULARY, lab_code

CELSIUS_CODE = "LAB//223762//°C"
CELSIUS_DESCRIPTION = "Temperature, Celsius [°C]"


@dataclass(frozen=True)
class Site:
    """One synthetic hospital: its case mix, lab draw frequency and temperature coding."""

    name: str
    age_beta: tuple[float, float]  # age at record start = 18 + 77 * Beta(*age_beta)
    lab_keep: float  # the share of laboratory results that are drawn
    celsius: bool  # temperature charted as LAB//223762//°C instead of LAB//223761//°F

    @property
    def is_default(self) -> bool:
        """True for the default hospital, whose output this module leaves unchanged."""
        return self == SITES[DEFAULT_SITE]

    def vocabulary(self) -> tuple[tuple[str, str], ...]:
        """Every (code, description) the site writes: the synthetic vocabulary, plus the
        Celsius temperature code at the end (so every other code keeps its index)."""
        return VOCABULARY + (((CELSIUS_CODE, CELSIUS_DESCRIPTION),) if self.celsius else ())

    def codes(self) -> tuple[str, ...]:
        """The codes of `vocabulary()`, in its order."""
        return tuple(code for code, _ in self.vocabulary())


DEFAULT_SITE = "A"
SITES = {
    "A": Site("A", age_beta=(2.2, 1.8), lab_keep=1.0, celsius=False),
    "B": Site("B", age_beta=(3.0, 1.4), lab_keep=0.5, celsius=True),
}
_LAB_INDICES = np.array([CODE_INDEX[lab_code(name)] for name in LABS], dtype=np.int16)
_FAHRENHEIT = CODE_INDEX[lab_code("temperature")]


def site_named(name: str) -> Site:
    """The site called `name`; raises EhrbenchError naming the known sites otherwise.

    >>> site_named("B").lab_keep
    0.5
    """
    if name not in SITES:
        hint = did_you_mean(name, SITES)
        raise EhrbenchError(
            f"unknown synthetic site {name!r}: the sites are {sorted(SITES)}"
            + (f"; {hint}" if hint else ".")
        )
    return SITES[name]


def site_events(site: Site, rng: np.random.Generator, events: EventArrays) -> EventArrays:
    """`events` (an `EventArrays` of one chunk) as `site` records them: lab results thinned to
    `site.lab_keep` and temperature recoded in Celsius. The default site's events are returned
    unchanged, without drawing from `rng`."""
    if site.lab_keep < 1.0:
        lab = np.isin(events.code, _LAB_INDICES)
        keep = ~lab | (rng.random(events.code.shape[0]) < site.lab_keep)
        events = EventArrays(*(getattr(events, f.name)[keep] for f in fields(EventArrays)))
    if site.celsius:
        fahrenheit = events.code == _FAHRENHEIT
        events.code[fahrenheit] = len(CODES)  # CELSIUS_CODE, appended by `Site.vocabulary`
        events.value[fahrenheit] = (events.value[fahrenheit] - 32.0) * 5.0 / 9.0
    return events
