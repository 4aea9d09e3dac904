"""Write the ACES golden fixtures in tests/fixtures/aces_goldens/ (needs benchmarks/.venv-aces).

Each case is a tiny hand-made MEDS event table and a cohort config. For each case this script
writes `<case>/events.parquet`, `<case>/cohort.yaml`, runs ACES 0.7.3 and stores its output as
`<case>/aces_labels.parquet`, and writes `<case>/notes.md`. Every case also carries the answer
worked out by hand from the spec (`expected`). Where the spec's section 9 makes ehrbench differ
from ACES (`section9` is set), the hand answer is written as `<case>/expected_labels.parquet`,
and the ehrbench tests compare against it instead of ACES's output.

The script refuses to write a case whose ACES output disagrees with the hand answer without a
section-9 reason, and one whose section-9 reason does not show up in ACES's output: a golden is
only stored once ACES's behaviour on it is understood.

Usage: .venv/bin/python benchmarks/make_aces_goldens.py [CASE ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aces_run import aces_available, run_aces  # noqa: E402

GOLDENS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "aces_goldens"
EVENT_SCHEMA = {
    "subject_id": pl.Int64,
    "time": pl.Datetime("us"),
    "code": pl.String,
    "numeric_value": pl.Float32,
}
EXPECTED_SCHEMA = {
    "subject_id": pl.Int64,
    "prediction_time": pl.Datetime("us"),
    "boolean_value": pl.Boolean,
}

# float32 neighbours of the bounds used by the value-range cases.
F32_1_2 = float(np.float32(1.2))
F32_ABOVE_1_2 = float(np.nextafter(np.float32(1.2), np.float32(2)))
F32_BELOW_1_2 = float(np.nextafter(np.float32(1.2), np.float32(0)))
F32_ABOVE_5_5 = float(np.nextafter(np.float32(5.5), np.float32(6)))
F32_BELOW_5_5 = float(np.nextafter(np.float32(5.5), np.float32(5)))


def ts(text: str | None) -> dt.datetime | None:
    """`"MM-DD HH:MM[:SS]"` in 2020 (or None for a static row)."""
    if text is None:
        return None
    return dt.datetime.strptime(
        f"2020-{text}", "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    )


@dataclass(frozen=True)
class Case:
    """One golden case: what it tests, its events, its cohort YAML and the hand-worked labels.

    Events are (subject, "MM-DD HH:MM" | None, code[, value[, text_value]]); labels are
    (subject, prediction time | None, label | None).
    """

    name: str
    tests: str
    events: tuple[tuple, ...]
    cohort: str
    expected: tuple[tuple, ...]
    section9: str | None = None
    predicates: str | None = None

    def events_frame(self) -> pl.DataFrame:
        """The events with the MEDS types; a fifth tuple item fills a `text_value` column."""
        rows = [
            (e[0], ts(e[1]), e[2], e[3] if len(e) > 3 else None, e[4] if len(e) > 4 else None)
            for e in self.events
        ]
        frame = pl.DataFrame(rows, schema={**EVENT_SCHEMA, "text_value": pl.String}, orient="row")
        return frame if any(len(e) > 4 for e in self.events) else frame.drop("text_value")

    def expected_frame(self) -> pl.DataFrame:
        rows = [(s, ts(t), b) for s, t, b in self.expected]
        return pl.DataFrame(rows, schema=EXPECTED_SCHEMA, orient="row")


# Shared event tables -------------------------------------------------------------------------

STAY_EVENTS = (
    (1, None, "GENDER//F"),
    (1, "01-01 00:00", "ADM"),
    (1, "01-01 00:00", "DIS"),
    (2, "01-01 00:00", "ADM"),
    (2, "01-02 00:00", "DEATH"),
    (2, "01-03 00:00", "DIS"),
    (3, "01-01 00:00", "ADM"),
    (3, "01-01 06:00", "LAB"),
    (3, "01-04 00:00", "DIS"),
    (3, "01-04 00:00", "DEATH"),
    (4, "01-01 00:00", "ADM"),
    (4, "01-01 12:00", "DEATH"),
    (5, "01-01 00:00", "ADM"),
    (5, "01-05 00:00", "DIS"),
    (5, "01-10 00:00", "ADM"),
    (5, "01-10 00:00", "DEATH"),
    (5, "01-10 00:00", "DIS"),
)

STAY_COHORT = """\
predicates:
  adm: {code: ADM}
  dis: {code: DIS}
  death: {code: DEATH}
trigger: adm
windows:
  # A sibling window, so that ACES's null-row defect (section 9) does not show here.
  history: {start: null, end: trigger, start_inclusive: true, end_inclusive: true}
  stay:
    start: trigger
    end: start -> dis
    start_inclusive: true
    end_inclusive: %s
    label: death
    index_timestamp: start
"""

PRIOR_EVENTS = (
    (1, "01-01 00:00", "ADM"),
    (1, "01-01 00:00", "LAB"),
    (1, "01-01 02:00", "ICU"),
    (1, "01-01 05:00", "LAB"),
    (2, "01-01 00:00", "LAB"),
    (2, "01-02 00:00", "ADM"),
    (2, "01-02 03:00", "LAB"),
    (3, "01-01 00:00", "ADM"),
    (3, "01-01 01:00", "ICU"),
    (3, "01-03 00:00", "ADM"),
    (3, "01-03 01:00", "LAB"),
    (4, "01-01 00:00", "ADM"),
    (4, "01-01 00:00", "ICU"),
    (4, "01-01 04:00", "LAB"),
)

PRIOR_COHORT = """\
predicates:
  adm: {code: ADM}
  lab: {code: LAB}
  icu: {code: ICU}
trigger: lab
windows:
  since_admission:
    start: end <- adm
    end: trigger
    start_inclusive: %s
    end_inclusive: true
    label: icu
    index_timestamp: end
  # A sibling window, so that ACES's null-row defect (section 9) does not show here.
  after: {start: trigger, end: start + 1h, start_inclusive: false, end_inclusive: true}
"""

FIRST_EVENTS = (
    (1, "01-01 00:00", "ADM"),
    (1, "01-02 00:00", "LAB"),
    (1, "01-03 00:00", "ADM"),
    (1, "01-04 00:00", "DEATH"),
    (2, None, "GENDER//F"),
    (2, "01-01 00:00", "LAB"),
    (2, "01-01 00:00", "ADM"),
    (2, "01-02 00:00", "ADM"),
    (3, "01-01 00:00", "ADM"),
)

NULL_START_COHORT = """\
predicates:
  adm: {code: ADM}
  lab: {code: LAB}
trigger: adm
windows:
  history:
    start: null
    end: trigger
    start_inclusive: %s
    end_inclusive: true
    label: lab
    index_timestamp: end
  # A sibling window, so that ACES's null-row defect (section 9) does not show here.
  next_month: {start: trigger, end: start + 30d, start_inclusive: false, end_inclusive: true}
"""

LAST_EVENTS = (
    (1, "01-01 00:00", "ADM"),
    (1, "01-02 00:00", "LAB"),
    (1, "01-05 00:00", "ADM"),
    (1, "01-06 00:00", "DEATH"),
    (2, "01-01 00:00", "ADM"),
    (2, "01-03 00:00", "ADM"),
    (2, "01-03 00:00", "DEATH"),
    (3, "01-01 00:00", "ADM"),
)

NULL_END_COHORT = """\
predicates:
  adm: {code: ADM}
  death: {code: DEATH}
trigger: adm
windows:
  # A sibling window, so that ACES's null-row defect (section 9) does not show here.
  last_day: {start: trigger - 24h, end: start + 24h, start_inclusive: true, end_inclusive: true}
  future:
    start: trigger
    end: null
    start_inclusive: false
    end_inclusive: %s
    label: death
    index_timestamp: start
"""

VALUE_EVENTS = (
    (1, "01-01 00:00", "LAB//K", F32_1_2),
    (1, "01-01 01:00", "LAB//K", F32_ABOVE_1_2),
    (1, "01-01 02:00", "LAB//K", F32_BELOW_1_2),
    (1, "01-01 03:00", "LAB//K", 5.5),
    (1, "01-01 04:00", "LAB//K", F32_BELOW_5_5),
    (1, "01-01 05:00", "LAB//K", F32_ABOVE_5_5),
    (1, "01-01 06:00", "LAB//K", 3.0),
    (1, "01-01 07:00", "LAB//K", None),
    (1, "01-01 08:00", "LAB//K", 0.0),
    (2, "01-01 00:00", "LAB//K", 3.0),
    (2, "01-01 00:00", "LAB//NA", 100.0),
    (2, "01-02 00:00", "LAB//K", 2.0),
    (2, "01-02 00:00", "LAB//NA", 100.5),
    (3, "01-01 00:00", "LAB//K", 5.5),
    (3, "01-01 00:00", "LAB//NA", None),
    (3, "01-01 00:00", "OTHER//K", 3.0),
)

VALUE_COHORT = """\
predicates:
  k_in_range:
    code: LAB//K
    value_min: 1.2
    value_max: 5.5
    value_min_inclusive: %(inc)s
    value_max_inclusive: %(inc)s
  any_lab_100:
    code: {regex: "^LAB//"}
    value_min: 100
    value_min_inclusive: %(inc)s
trigger: k_in_range
windows:
  same_time:
    start: trigger
    end: start + 30m
    start_inclusive: true
    end_inclusive: false
    label: any_lab_100
    index_timestamp: start
"""


CASES: tuple[Case, ...] = (
    Case(
        name="next_end_inclusive_true",
        tests="`start -> dis` with end_inclusive true: the event may be at the reference time "
        "(a zero-length event-bound window, subjects 1 and 5); an outcome at the end event's "
        "time is inside (subject 3); no discharge drops the trigger (subject 4); two triggers "
        "for one subject (subject 5).",
        events=STAY_EVENTS,
        cohort=STAY_COHORT % "true",
        expected=(
            (1, "01-01 00:00", False),
            (2, "01-01 00:00", True),
            (3, "01-01 00:00", True),
            (5, "01-01 00:00", False),
            (5, "01-10 00:00", True),
        ),
    ),
    Case(
        name="next_end_inclusive_false",
        tests="`start -> dis` with end_inclusive false: only a strictly later discharge ends the "
        "window (subject 1 and subject 5's second stay have none: dropped); the end event's time "
        "is outside (subject 3's death at discharge).",
        events=STAY_EVENTS,
        cohort=STAY_COHORT % "false",
        expected=(
            (2, "01-01 00:00", True),
            (3, "01-01 00:00", False),
            (5, "01-01 00:00", False),
        ),
    ),
    Case(
        name="prev_start_inclusive_true",
        tests="`end <- adm` with start_inclusive true: an admission at the trigger's own time "
        "starts a zero-length window (subject 1's first lab); the most recent admission is the "
        "one found (subject 3); an event at the found start is inside (subject 4); a lab before "
        "any admission is dropped (subject 2).",
        events=PRIOR_EVENTS,
        cohort=PRIOR_COHORT % "true",
        expected=(
            (1, "01-01 00:00", False),
            (1, "01-01 05:00", True),
            (2, "01-02 03:00", False),
            (3, "01-03 01:00", False),
            (4, "01-01 04:00", True),
        ),
    ),
    Case(
        name="prev_start_inclusive_false",
        tests="`end <- adm` with start_inclusive false: only a strictly earlier admission counts "
        "(subject 1's lab at admission time is dropped); an event at the found start is outside "
        "(subject 4).",
        events=PRIOR_EVENTS,
        cohort=PRIOR_COHORT % "false",
        expected=(
            (1, "01-01 05:00", True),
            (2, "01-02 03:00", False),
            (3, "01-03 01:00", False),
            (4, "01-01 04:00", False),
        ),
    ),
    Case(
        name="null_start_inclusive",
        tests="`start: null` with start_inclusive true is the subject's first event, included: "
        "triggers at the first event give a zero-length history (subjects 1 to 3), which holds "
        "the first event's other rows (subject 2's lab). Static rows are not events.",
        events=FIRST_EVENTS,
        cohort=NULL_START_COHORT % "true",
        expected=(
            (1, "01-01 00:00", False),
            (1, "01-03 00:00", True),
            (2, "01-01 00:00", True),
            (2, "01-02 00:00", True),
            (3, "01-01 00:00", False),
        ),
    ),
    Case(
        name="null_start_exclusive",
        tests="`start: null` with start_inclusive false (`end <- _RECORD_START`, strictly "
        "earlier): a trigger at the subject's first event cannot place its window and is "
        "dropped; the first event itself is outside the window (subject 2's lab).",
        events=FIRST_EVENTS,
        cohort=NULL_START_COHORT % "false",
        expected=(
            (1, "01-03 00:00", True),
            (2, "01-02 00:00", False),
        ),
    ),
    Case(
        name="null_end_inclusive",
        tests="`end: null` with end_inclusive true is the subject's last event, included "
        "(subject 1's death); a trigger at the last event gets a zero-length window "
        "(start exclusive, end inclusive) that holds nothing (subjects 2 and 3).",
        events=LAST_EVENTS,
        cohort=NULL_END_COHORT % "true",
        expected=(
            (1, "01-01 00:00", True),
            (1, "01-05 00:00", True),
            (2, "01-01 00:00", True),
            (2, "01-03 00:00", False),
            (3, "01-01 00:00", False),
        ),
    ),
    Case(
        name="null_end_exclusive",
        tests="`end: null` with end_inclusive false (`start -> _RECORD_END`, strictly later): "
        "the last event is outside (subject 1's death); a trigger at the last event is dropped "
        "(subjects 2 and 3).",
        events=LAST_EVENTS,
        cohort=NULL_END_COHORT % "false",
        expected=(
            (1, "01-01 00:00", False),
            (1, "01-05 00:00", False),
            (2, "01-01 00:00", False),
        ),
    ),
    Case(
        name="derived_and_or",
        tests="Derived predicates: `and` needs both inputs at one timestamp (subject 2's ICU "
        "two hours after admission is no trigger); a derived predicate counts 1 per timestamp "
        "even when several inputs match (subject 1: death and DIED discharge at one time pass "
        "`(None, 1)`; subject 4: two times fail it); a derived predicate of a derived predicate "
        "(label); duplicate trigger rows are one trigger (subject 5).",
        events=(
            (1, "01-01 00:00", "ADM"),
            (1, "01-01 00:00", "ICU//MICU"),
            (1, "01-03 00:00", "DEATH"),
            (1, "01-03 00:00", "DIS//DIED"),
            (1, "01-03 00:00", "LAB//K", 4.0),
            (2, "01-01 00:00", "ADM"),
            (2, "01-01 02:00", "ICU//SICU"),
            (3, "01-01 00:00", "ADM"),
            (3, "01-01 00:00", "ICU//CCU"),
            (3, "01-05 00:00", "DIS//DIED"),
            (3, "01-06 00:00", "LAB//K", 4.0),
            (4, "01-01 00:00", "ADM"),
            (4, "01-01 00:00", "ICU//MICU"),
            (4, "01-02 00:00", "DEATH"),
            (4, "01-04 00:00", "DIS//DIED"),
            (5, "01-01 00:00", "ADM"),
            (5, "01-01 00:00", "ICU//MICU"),
            (5, "01-01 00:00", "ICU//MICU"),
            (5, "01-03 00:00", "LAB//K", 4.0),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
  icu: {code: {regex: "^ICU//"}}
  death: {code: DEATH}
  dis_died: {code: DIS//DIED}
  lab_k: {code: LAB//K}
  died: {expr: "or(death, dis_died)"}
  adm_to_icu: {expr: "and(adm, icu)"}
  died_with_lab: {expr: "and(died, lab_k)"}
trigger: adm_to_icu
windows:
  target:
    start: trigger
    end: start + 10d
    start_inclusive: false
    end_inclusive: true
    has: {died: "(None, 1)"}
    label: died_with_lab
    index_timestamp: start
""",
        expected=(
            (1, "01-01 00:00", True),
            (3, "01-01 00:00", False),
            (5, "01-01 00:00", False),
        ),
    ),
    Case(
        name="any_event_counts",
        tests="`_ANY_EVENT` counts distinct timestamps (subject 1: three rows at one time and "
        "the trigger make 2 < 3; subject 5: two trigger rows count once), a plain predicate "
        "counts rows (two labs at one time count 2: subjects 2 and 4), a temporal window edge "
        "exactly at trigger - 24h is inside with start_inclusive true (subject 1).",
        events=(
            (1, "01-01 00:00", "X"),
            (1, "01-01 00:00", "Y"),
            (1, "01-01 00:00", "Z"),
            (1, "01-02 00:00", "ADM"),
            (1, "01-02 03:00", "LAB", 1.0),
            (1, "01-02 03:00", "LAB", 1.0),
            (2, "01-01 01:00", "X"),
            (2, "01-01 05:00", "X"),
            (2, "01-01 09:00", "Y"),
            (2, "01-02 00:00", "ADM"),
            (2, "01-02 03:00", "LAB", 6.0),
            (2, "01-02 03:00", "LAB", 1.0),
            (3, "01-01 10:00", "X"),
            (3, "01-01 20:00", "Y"),
            (3, "01-02 00:00", "ADM"),
            (3, "01-02 05:00", "LAB", 1.0),
            (3, "01-02 07:00", "LAB", 1.0),
            (4, "01-01 10:00", "X"),
            (4, "01-01 20:00", "Y"),
            (4, "01-02 00:00", "ADM"),
            (4, "01-02 05:00", "LAB", 6.0),
            (4, "01-02 05:00", "LAB", 6.0),
            (4, "01-02 06:00", "LAB", 6.0),
            (5, "01-01 10:00", "X"),
            (5, "01-01 20:00", "Y"),
            (5, "01-02 00:00", "ADM"),
            (5, "01-02 00:00", "ADM"),
            (5, "01-02 01:00", "LAB", 7.0),
            (5, "01-02 02:00", "LAB", 1.0),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
  lab: {code: LAB}
  lab_high: {code: LAB, value_min: 5}
trigger: adm
windows:
  input:
    start: trigger - 24h
    end: start + 24h
    start_inclusive: true
    end_inclusive: true
    has: {_ANY_EVENT: "(3, None)"}
  target:
    start: trigger
    end: start + 24h
    start_inclusive: false
    end_inclusive: true
    has: {lab: "(2, 2)"}
    label: lab_high
    index_timestamp: start
""",
        expected=(
            (2, "01-02 00:00", True),
            (3, "01-02 00:00", False),
            (5, "01-02 00:00", True),
        ),
    ),
    Case(
        name="value_bounds_strict",
        tests="value_min/value_max strict (the default): float32 1.2 and 5.5 themselves fail, "
        "their float32 neighbours inside pass, null values fail; bounds on a regex code "
        "(`any_lab_100`: 100.0 fails, 100.5 passes).",
        events=VALUE_EVENTS,
        cohort=VALUE_COHORT % {"inc": "false"},
        expected=(
            (1, "01-01 01:00", False),
            (1, "01-01 04:00", False),
            (1, "01-01 06:00", False),
            (2, "01-01 00:00", False),
            (2, "01-02 00:00", True),
        ),
    ),
    Case(
        name="value_bounds_inclusive",
        tests="value_min/value_max inclusive: a stored 1.2 (float32) equals `value_min: 1.2` and "
        "passes, as does 5.5; the float32 neighbours outside fail; bounds on a regex code "
        "(`any_lab_100`: 100.0 passes inclusive).",
        events=VALUE_EVENTS,
        cohort=VALUE_COHORT % {"inc": "true"},
        expected=(
            (1, "01-01 00:00", False),
            (1, "01-01 01:00", False),
            (1, "01-01 03:00", False),
            (1, "01-01 04:00", False),
            (1, "01-01 06:00", False),
            (2, "01-01 00:00", True),
            (2, "01-02 00:00", True),
            (3, "01-01 00:00", False),
        ),
    ),
    Case(
        name="codes_regex_any",
        tests="Code forms: a regex is an unanchored search (`DIED|MEDS_DEATH` matches "
        "`HOSPITAL_DISCHARGE//DIED`), `^` anchors it (subjects 3 and 6 have no trigger); "
        "`any` matches exactly one of its strings (subject 2's CCU is not listed); an event at "
        "trigger + 24h is inside an end-inclusive window (subject 7 dropped by `(None, 0)`); "
        "two matching rows at one time (subject 5).",
        events=(
            (1, "01-01 00:00", "HOSPITAL_ADMISSION//EMERGENCY"),
            (1, "01-01 02:00", "ICU_ADMISSION//MICU"),
            (2, "01-01 00:00", "HOSPITAL_ADMISSION//ELECTIVE"),
            (2, "01-01 02:00", "ICU_ADMISSION//CCU"),
            (3, "01-01 00:00", "XHOSPITAL_ADMISSION//EMERGENCY"),
            (3, "01-01 02:00", "ICU_ADMISSION//MICU"),
            (4, "01-01 00:00", "HOSPITAL_ADMISSION//URGENT"),
            (4, "01-01 03:00", "HOSPITAL_DISCHARGE//DIED"),
            (5, "01-01 00:00", "HOSPITAL_ADMISSION//URGENT"),
            (5, "01-01 01:00", "ICU_ADMISSION//SICU"),
            (5, "01-01 01:00", "ICU_ADMISSION//MICU"),
            (6, "01-01 00:00", "HOSPITAL_ADMISSION"),
            (6, "01-01 02:00", "ICU_ADMISSION//MICU"),
            (7, "01-01 00:00", "HOSPITAL_ADMISSION//EMERGENCY"),
            (7, "01-02 00:00", "MEDS_DEATH"),
            (8, "01-01 00:00", "HOSPITAL_ADMISSION//EMERGENCY"),
            (8, "01-01 00:00", "ICU_ADMISSION//MICU"),
        ),
        cohort="""\
predicates:
  adm: {code: {regex: "^HOSPITAL_ADMISSION//"}}
  icu: {code: {any: ["ICU_ADMISSION//MICU", "ICU_ADMISSION//SICU"]}}
  died: {code: {regex: "DIED|MEDS_DEATH"}}
trigger: adm
windows:
  first_day:
    start: trigger
    end: start + 24h
    start_inclusive: true
    end_inclusive: true
    has: {died: "(None, 0)"}
    label: icu
    index_timestamp: start
""",
        expected=(
            (1, "01-01 00:00", True),
            (2, "01-01 00:00", False),
            (5, "01-01 00:00", True),
            (8, "01-01 00:00", True),
        ),
    ),
    Case(
        name="demographics",
        tests="`patient_demographics`: a subject is kept only with a null-time row matching "
        "(subject 2 is male, subject 3 has no static rows, subject 5's GENDER//F row has a "
        "time); a subject with both F and M static rows passes (subject 4); repeated static "
        "rows (subject 6); several triggers of a kept subject.",
        events=(
            (1, None, "GENDER//F"),
            (1, "01-01 00:00", "ADM"),
            (1, "01-02 00:00", "DEATH"),
            (2, None, "GENDER//M"),
            (2, "01-01 00:00", "ADM"),
            (2, "01-02 00:00", "DEATH"),
            (3, "01-01 00:00", "ADM"),
            (3, "01-02 00:00", "DEATH"),
            (4, None, "GENDER//F"),
            (4, None, "GENDER//M"),
            (4, "01-01 00:00", "ADM"),
            (5, "01-01 00:00", "GENDER//F"),
            (5, "01-01 00:00", "ADM"),
            (6, None, "GENDER//F"),
            (6, None, "GENDER//F"),
            (6, "01-01 00:00", "ADM"),
            (6, "01-03 00:00", "ADM"),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
  outcome: {code: {any: [DEATH, ADM]}}
patient_demographics:
  female: {code: GENDER//F}
trigger: adm
windows:
  target:
    start: trigger
    end: start + 48h
    start_inclusive: false
    end_inclusive: true
    label: outcome
    index_timestamp: start
""",
        expected=(
            (1, "01-01 00:00", True),
            (4, "01-01 00:00", False),
            (6, "01-01 00:00", True),
            (6, "01-03 00:00", False),
        ),
    ),
    Case(
        name="empty_exclusive_demographics",
        tests="Two exclusive demographics (female and male) are an AND: no subject has both, "
        "so the cohort is empty, written as an empty label table (not a crash).",
        events=(
            (1, None, "GENDER//F"),
            (1, "01-01 00:00", "ADM"),
            (2, None, "GENDER//M"),
            (2, "01-01 00:00", "ADM"),
            (3, "01-01 00:00", "ADM"),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
patient_demographics:
  female: {code: GENDER//F}
  male: {code: GENDER//M}
trigger: adm
windows:
  target:
    start: trigger
    end: start + 48h
    start_inclusive: false
    end_inclusive: true
    label: adm
    index_timestamp: start
""",
        expected=(),
    ),
    Case(
        name="has_ranges",
        tests="`has` ranges `(2, 3)` (subjects 1, 2 and 5 fail on 0, 1 and 4 diagnoses; two "
        "diagnoses at one time count 2, subject 4), `(None, 0)` (death in the gap: subject 6, "
        "and exactly at the gap's inclusive end: subject 9) and `(1, None)` (no lab: subject 7; "
        "a lab at the exclusive gap start: subject 11); an end-exclusive history misses a "
        "diagnosis at the trigger (subject 8); a chained window `start: gap.end` and an outcome "
        "exactly at its inclusive end (subject 10).",
        events=(
            (1, "01-01 00:00", "X"),
            (1, "01-10 00:00", "ADM"),
            (1, "01-10 06:00", "LAB"),
            (2, "01-01 00:00", "DX//A"),
            (2, "01-10 00:00", "ADM"),
            (2, "01-10 06:00", "LAB"),
            (3, "01-01 00:00", "DX//A"),
            (3, "01-02 00:00", "DX//B"),
            (3, "01-10 00:00", "ADM"),
            (3, "01-10 06:00", "LAB"),
            (4, "01-01 00:00", "DX//A"),
            (4, "01-01 00:00", "DX//B"),
            (4, "01-05 00:00", "DX//C"),
            (4, "01-10 00:00", "ADM"),
            (4, "01-10 06:00", "LAB"),
            (4, "01-13 00:00", "DEATH"),
            (5, "01-01 00:00", "DX//A"),
            (5, "01-02 00:00", "DX//B"),
            (5, "01-03 00:00", "DX//C"),
            (5, "01-04 00:00", "DX//D"),
            (5, "01-10 00:00", "ADM"),
            (5, "01-10 06:00", "LAB"),
            (6, "01-01 00:00", "DX//A"),
            (6, "01-02 00:00", "DX//B"),
            (6, "01-10 00:00", "ADM"),
            (6, "01-10 06:00", "LAB"),
            (6, "01-10 12:00", "DEATH"),
            (7, "01-01 00:00", "DX//A"),
            (7, "01-02 00:00", "DX//B"),
            (7, "01-10 00:00", "ADM"),
            (8, "01-01 00:00", "DX//A"),
            (8, "01-10 00:00", "DX//B"),
            (8, "01-10 00:00", "ADM"),
            (8, "01-10 06:00", "LAB"),
            (9, "01-01 00:00", "DX//A"),
            (9, "01-02 00:00", "DX//B"),
            (9, "01-10 00:00", "ADM"),
            (9, "01-10 06:00", "LAB"),
            (9, "01-11 00:00", "DEATH"),
            (10, "01-01 00:00", "DX//A"),
            (10, "01-02 00:00", "DX//B"),
            (10, "01-10 00:00", "ADM"),
            (10, "01-10 06:00", "LAB"),
            (10, "01-18 00:00", "DEATH"),
            (11, "01-01 00:00", "DX//A"),
            (11, "01-02 00:00", "DX//B"),
            (11, "01-10 00:00", "ADM"),
            (11, "01-10 00:00", "LAB"),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
  dx: {code: {regex: "^DX//"}}
  lab: {code: LAB}
  death: {code: DEATH}
trigger: adm
windows:
  history:
    start: null
    end: trigger
    start_inclusive: true
    end_inclusive: false
    has: {dx: "(2, 3)"}
  gap:
    start: trigger
    end: start + 24h
    start_inclusive: false
    end_inclusive: true
    has: {death: "(None, 0)", lab: "(1, None)"}
  target:
    start: gap.end
    end: start + 7d
    start_inclusive: false
    end_inclusive: true
    label: death
    index_timestamp: start
""",
        expected=(
            (3, "01-11 00:00", False),
            (4, "01-11 00:00", True),
            (10, "01-11 00:00", True),
        ),
    ),
    Case(
        name="readmission_multiple_triggers",
        tests="Several triggers per subject, each its own row; duplicate trigger rows at one "
        "time are one trigger (subject 1 on 01-10); two triggers that end up with the same "
        "prediction time stay two rows (subject 2: a readmission at the discharge time gets a "
        "zero-length stay, and the first stay's follow-up excludes it, start exclusive); a "
        "window chained on an event-bound one (`start: stay.end`).",
        events=(
            (1, "01-01 00:00", "ADM"),
            (1, "01-03 00:00", "DIS"),
            (1, "01-10 00:00", "ADM"),
            (1, "01-10 00:00", "ADM"),
            (1, "01-12 00:00", "DIS"),
            (1, "01-20 00:00", "ADM"),
            (1, "01-25 00:00", "DIS"),
            (2, "01-01 00:00", "ADM"),
            (2, "01-05 00:00", "DIS"),
            (2, "01-05 00:00", "ADM"),
            (2, "01-07 00:00", "DIS"),
            (3, "01-01 00:00", "ADM"),
            (3, "01-02 00:00", "DIS"),
            (3, "02-01 00:00", "ADM"),
            (3, "02-01 00:00", "DIS"),
            (4, "01-01 00:00", "ADM"),
            (4, "01-02 00:00", "DIS"),
            (4, "02-01 00:01", "ADM"),
            (4, "02-02 00:00", "DIS"),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
  dis: {code: DIS}
trigger: adm
windows:
  stay:
    start: trigger
    end: start -> dis
    start_inclusive: true
    end_inclusive: true
  follow_up:
    start: stay.end
    end: start + 30d
    start_inclusive: false
    end_inclusive: true
    label: adm
    index_timestamp: start
""",
        expected=(
            (1, "01-03 00:00", True),
            (1, "01-12 00:00", True),
            (1, "01-25 00:00", False),
            (2, "01-05 00:00", False),
            (2, "01-05 00:00", False),
            (3, "01-02 00:00", True),
            (3, "02-01 00:00", False),
            (4, "01-02 00:00", False),
            (4, "02-02 00:00", False),
        ),
    ),
    Case(
        name="trigger_any_event",
        tests="`trigger: _ANY_EVENT`: one trigger per distinct timestamp (static rows are none; "
        "subject 3's two rows at 00:00 are one); `_ANY_EVENT` in `has` counts timestamps; "
        "`_RECORD_END` counts 1 at the last timestamp (a window holding it fails "
        "`(None, 0)`).",
        events=(
            (1, None, "GENDER//F"),
            (1, "01-01 00:00", "ADM"),
            (1, "01-01 00:00", "LAB"),
            (1, "01-01 10:00", "LAB"),
            (1, "01-03 00:00", "DIS"),
            (2, "01-05 00:00", "ADM"),
            (3, "01-01 00:00", "X"),
            (3, "01-01 00:00", "X"),
            (3, "01-01 01:00", "ADM"),
            (3, "01-01 23:00", "Y"),
            (3, "01-03 00:00", "Z"),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
trigger: _ANY_EVENT
windows:
  history:
    start: null
    end: trigger
    start_inclusive: true
    end_inclusive: true
    has: {_ANY_EVENT: "(2, None)"}
    index_timestamp: end
  next_day:
    start: trigger
    end: start + 24h
    start_inclusive: true
    end_inclusive: true
    has: {_RECORD_END: "(None, 0)"}
    label: adm
""",
        expected=(
            (1, "01-01 10:00", False),
            (3, "01-01 01:00", True),
            (3, "01-01 23:00", False),
        ),
    ),
    Case(
        name="next_at_reference_time",
        tests="`start: gap.end, end: start -> death` with start exclusive and end inclusive: a "
        "death exactly at gap.end is the event found (the first at or after the reference), so "
        "the outcome window is the empty (gap.end, gap.end] and the label is false, even though "
        "a later death exists (subject 2); a later death alone gives true (subject 3).",
        events=(
            (1, "01-01 00:00", "ADM"),
            (1, "01-02 00:00", "DEATH"),
            (2, "01-01 00:00", "ADM"),
            (2, "01-02 00:00", "DEATH"),
            (2, "01-02 00:00", "LAB"),
            (2, "01-03 00:00", "DEATH"),
            (3, "01-01 00:00", "ADM"),
            (3, "01-03 00:00", "DEATH"),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
  death: {code: DEATH}
trigger: adm
windows:
  input: {start: null, end: trigger, start_inclusive: true, end_inclusive: true}
  gap: {start: trigger, end: start + 24h, start_inclusive: false, end_inclusive: true}
  target:
    start: gap.end
    end: start -> death
    start_inclusive: false
    end_inclusive: true
    label: death
    index_timestamp: start
""",
        expected=(
            (1, "01-02 00:00", False),
            (2, "01-02 00:00", False),
            (3, "01-02 00:00", True),
        ),
    ),
    Case(
        name="value_nan",
        tests="A NaN `numeric_value` (not null) passes `value_min` and fails `value_max`, as "
        "polars orders NaN above every number (subject 1); a null fails both (subject 4). The "
        "spec only says that null never passes; this golden pins ACES's NaN behaviour.",
        events=(
            (1, "01-01 00:00", "ADM"),
            (1, "01-01 01:00", "LAB", float("nan")),
            (2, "01-01 00:00", "ADM"),
            (2, "01-01 01:00", "LAB", 6.0),
            (3, "01-01 00:00", "ADM"),
            (3, "01-01 01:00", "LAB", 1.0),
            (4, "01-01 00:00", "ADM"),
            (4, "01-01 01:00", "LAB"),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
  high: {code: LAB, value_min: 5}
  low: {code: LAB, value_max: 5}
trigger: adm
windows:
  not_low:
    start: trigger
    end: start + 24h
    start_inclusive: true
    end_inclusive: true
    has: {low: "(None, 0)"}
  first_day:
    start: trigger
    end: start + 24h
    start_inclusive: true
    end_inclusive: true
    label: high
    index_timestamp: start
""",
        expected=(
            (1, "01-01 00:00", True),
            (2, "01-01 00:00", True),
            (4, "01-01 00:00", False),
        ),
    ),
    Case(
        name="duration_formats",
        tests="Duration spellings `1d12h`, `1.5h`, `1 day, 14:20:16` and `2w`: each window must "
        "hold its marker placed exactly at trigger + duration (end inclusive) and not its late "
        "twin just after. Subject 1 passes all four; subjects 2 to 5 each have one marker "
        "late (by a minute, or by one second for `1 day, 14:20:16`) and are dropped.",
        events=(
            (1, "01-01 00:00", "ADM"),
            (1, "01-02 12:00", "A"),
            (1, "01-02 12:01", "A_LATE"),
            (1, "01-01 01:30", "B"),
            (1, "01-01 01:31", "B_LATE"),
            (1, "01-02 14:20:16", "C"),
            (1, "01-02 14:21", "C_LATE"),
            (1, "01-15 00:00", "D"),
            (1, "01-15 00:01", "D_LATE"),
            (2, "01-01 00:00", "ADM"),
            (2, "01-02 12:01", "A"),
            (2, "01-01 01:30", "B"),
            (2, "01-02 14:20:16", "C"),
            (2, "01-15 00:00", "D"),
            (3, "01-01 00:00", "ADM"),
            (3, "01-02 12:00", "A"),
            (3, "01-01 01:31", "B"),
            (3, "01-02 14:20:16", "C"),
            (3, "01-15 00:00", "D"),
            (4, "01-01 00:00", "ADM"),
            (4, "01-02 12:00", "A"),
            (4, "01-01 01:30", "B"),
            (4, "01-02 14:20:17", "C"),
            (4, "01-15 00:00", "D"),
            (5, "01-01 00:00", "ADM"),
            (5, "01-02 12:00", "A"),
            (5, "01-01 01:30", "B"),
            (5, "01-02 14:20:16", "C"),
            (5, "01-15 00:01", "D"),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
  a: {code: A}
  a_late: {code: A_LATE}
  b: {code: B}
  b_late: {code: B_LATE}
  c: {code: C}
  c_late: {code: C_LATE}
  d: {code: D}
  d_late: {code: D_LATE}
trigger: adm
windows:
  wa:
    start: trigger
    end: start + 1d12h
    start_inclusive: true
    end_inclusive: true
    has: {a: "(1, 1)", a_late: "(None, 0)"}
    label: a_late
    index_timestamp: start
  wb:
    start: trigger
    end: start + 1.5h
    start_inclusive: true
    end_inclusive: true
    has: {b: "(1, 1)", b_late: "(None, 0)"}
  wc:
    start: trigger
    end: "start + 1 day, 14:20:16"
    start_inclusive: true
    end_inclusive: true
    has: {c: "(1, 1)", c_late: "(None, 0)"}
  wd:
    start: trigger
    end: start + 2w
    start_inclusive: true
    end_inclusive: true
    has: {d: "(1, 1)", d_late: "(None, 0)"}
""",
        expected=((1, "01-01 00:00", False),),
    ),
    Case(
        name="start_end_minus_196",
        tests="A window written `start: end - 24h` with `index_timestamp: start` (ACES #196); "
        "its start is exclusive: a lab exactly at trigger - 24h is outside (subject 3 "
        "dropped), a lab at the trigger is inside (subject 2).",
        section9="ACES uses the window's end (the trigger) as `prediction_time` on a window "
        "written `start: end - 24h` (#196); ehrbench uses the true start, trigger - 24h. The "
        "rows kept and their labels are the same.",
        events=(
            (1, "01-01 06:00", "LAB"),
            (1, "01-02 00:00", "ADM"),
            (1, "01-03 00:00", "DEATH"),
            (2, "01-02 00:00", "ADM"),
            (2, "01-02 00:00", "LAB"),
            (3, "01-01 00:00", "LAB"),
            (3, "01-02 00:00", "ADM"),
            (3, "01-02 12:00", "DEATH"),
            (4, "01-01 12:00", "LAB"),
            (4, "01-02 00:00", "ADM"),
            (4, "01-04 00:00", "DEATH"),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
  lab: {code: LAB}
  death: {code: DEATH}
trigger: adm
windows:
  input:
    start: end - 24h
    end: trigger
    start_inclusive: false
    end_inclusive: true
    has: {lab: "(1, None)"}
    index_timestamp: start
  target:
    start: trigger
    end: start + 48h
    start_inclusive: false
    end_inclusive: true
    label: death
""",
        expected=(
            (1, "01-01 00:00", True),
            (2, "01-01 00:00", False),
            (4, "01-01 00:00", True),
        ),
    ),
    Case(
        name="start_end_minus_196_index_end",
        tests="A window written `start: end - 24h` with `index_timestamp: end` (ACES #196), and "
        "a window hanging on its start (`start: input.start`), which is placed at the true "
        "start, trigger - 24h, by both tools (subject 2's death at 03:00 is inside it).",
        section9="ACES uses the window's start (trigger - 24h) as `prediction_time` for "
        "`index_timestamp: end` on a window written `start: end - 24h` (#196); ehrbench uses "
        "the true end, the trigger. The rows kept and their labels are the same.",
        events=(
            (1, "01-01 06:00", "LAB"),
            (1, "01-02 00:00", "ADM"),
            (1, "01-03 00:00", "DEATH"),
            (2, "01-01 03:00", "DEATH"),
            (2, "01-02 00:00", "ADM"),
            (3, "01-01 12:00", "LAB"),
            (3, "01-02 00:00", "ADM"),
            (3, "01-02 03:00", "DEATH"),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
  death: {code: DEATH}
trigger: adm
windows:
  input:
    start: end - 24h
    end: trigger
    start_inclusive: true
    end_inclusive: true
    index_timestamp: end
  early:
    start: input.start
    end: start + 6h
    start_inclusive: true
    end_inclusive: true
    label: death
""",
        expected=(
            (1, "01-02 00:00", False),
            (2, "01-02 00:00", True),
            (3, "01-02 00:00", False),
        ),
    ),
    Case(
        name="other_column_equality",
        tests="A predicate key that is not a reserved key is an equality test on the data "
        "column of that name (`text_value: pos`): a `neg` or null text_value fails.",
        events=(
            (1, "01-01 00:00", "ADM"),
            (1, "01-01 01:00", "LAB", 1.0, "pos"),
            (1, "01-01 02:00", "LAB", 1.0, "neg"),
            (2, "01-01 00:00", "ADM"),
            (2, "01-01 02:00", "LAB", 1.0, "neg"),
            (2, "01-01 03:00", "LAB"),
            (3, "01-01 00:00", "ADM"),
            (3, "01-01 05:00", "OTHER", None, "pos"),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
  positive: {code: LAB, text_value: pos}
trigger: adm
windows:
  first_day:
    start: trigger
    end: start + 24h
    start_inclusive: false
    end_inclusive: true
    label: positive
    index_timestamp: start
""",
        expected=(
            (1, "01-01 00:00", True),
            (2, "01-01 00:00", False),
            (3, "01-01 00:00", False),
        ),
    ),
    Case(
        name="zero_length_has_212",
        tests="Zero-length temporal windows written `end: start` and `end: start + 0h` "
        "(ACES #212) with `has` constraints on the trigger's own timestamp.",
        section9="ACES silently drops both zero-length windows and their `has` (#212), so it "
        "keeps subject 2 (no lab at the trigger) and subject 4 (death at the trigger). "
        "ehrbench applies the constraints to the zero-length window [trigger, trigger] and "
        "drops both.",
        events=(
            (1, "01-01 00:00", "ADM"),
            (1, "01-01 00:00", "LAB"),
            (1, "01-02 00:00", "DEATH"),
            (2, "01-01 00:00", "ADM"),
            (2, "01-02 00:00", "LAB"),
            (2, "01-02 00:00", "DEATH"),
            (3, "01-01 00:00", "ADM"),
            (3, "01-01 00:00", "LAB"),
            (4, "01-01 00:00", "ADM"),
            (4, "01-01 00:00", "LAB"),
            (4, "01-01 00:00", "DEATH"),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
  lab: {code: LAB}
  death: {code: DEATH}
trigger: adm
windows:
  lab_at_trigger:
    start: trigger
    end: start
    start_inclusive: true
    end_inclusive: true
    has: {lab: "(1, None)"}
  alive_at_trigger:
    start: trigger
    end: start + 0h
    start_inclusive: true
    end_inclusive: true
    has: {death: "(None, 0)"}
  target:
    start: trigger
    end: start + 48h
    start_inclusive: false
    end_inclusive: true
    label: death
    index_timestamp: start
""",
        expected=(
            (1, "01-01 00:00", True),
            (3, "01-01 00:00", False),
        ),
    ),
    Case(
        name="leak_event_bound_no_event",
        tests="The in-hospital-mortality pattern: a gap window, then an outcome window "
        "`start: gap.end, end: start -> death_or_dis` that is the only child of its parent. "
        "Subject 1's second admission and subject 2 have no discharge or death after the gap.",
        section9="ACES leaks one row with null `prediction_time` and null `boolean_value` for "
        "each trigger whose event-bound window finds no event (here 2 rows); ehrbench drops "
        "those triggers.",
        events=(
            (1, "01-01 00:00", "ADM"),
            (1, "01-03 00:00", "DIS"),
            (1, "01-10 00:00", "ADM"),
            (1, "01-10 12:00", "LAB"),
            (2, "01-01 00:00", "ADM"),
            (2, "01-01 06:00", "LAB"),
            (3, "01-01 00:00", "ADM"),
            (3, "01-04 00:00", "DEATH"),
            (3, "01-04 00:00", "DIS"),
        ),
        cohort="""\
predicates:
  adm: {code: ADM}
  dis: {code: DIS}
  death: {code: DEATH}
  death_or_dis: {expr: "or(death, dis)"}
trigger: adm
windows:
  gap:
    start: trigger
    end: start + 24h
    start_inclusive: false
    end_inclusive: true
    has: {death_or_dis: "(None, 0)"}
  target:
    start: gap.end
    end: start -> death_or_dis
    start_inclusive: false
    end_inclusive: true
    label: death
    index_timestamp: start
""",
        expected=(
            (1, "01-02 00:00", False),
            (3, "01-02 00:00", True),
        ),
    ),
    Case(
        name="predicates_file",
        tests="A dataset-agnostic cohort with `???` placeholders (a whole predicate and a "
        "`code`) filled by a predicates file, which also adds a `patient_demographics` entry "
        "(subject 2 is male: dropped).",
        events=(
            (1, None, "GENDER//F"),
            (1, "01-01 00:00", "HOSPITAL_ADMISSION//EMERGENCY"),
            (1, "01-02 00:00", "MEDS_DEATH"),
            (2, None, "GENDER//M"),
            (2, "01-01 00:00", "HOSPITAL_ADMISSION//URGENT"),
            (3, None, "GENDER//F"),
            (3, "01-01 00:00", "HOSPITAL_ADMISSION//URGENT"),
            (3, "01-05 00:00", "MEDS_DEATH"),
        ),
        cohort="""\
predicates:
  admission: ???
  death:
    code: ???
trigger: admission
windows:
  target:
    start: trigger
    end: start + 48h
    start_inclusive: false
    end_inclusive: true
    label: death
    index_timestamp: start
""",
        predicates="""\
predicates:
  admission: {code: {regex: "^HOSPITAL_ADMISSION//"}}
  death: {code: MEDS_DEATH}
patient_demographics:
  female: {code: GENDER//F}
""",
        expected=(
            (1, "01-01 00:00", True),
            (3, "01-01 00:00", False),
        ),
    ),
)


def markdown_table(frame: pl.DataFrame) -> str:
    """A small markdown table of `frame` (null shown as `null`)."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = [
        "| " + " | ".join("null" if v is None else str(v) for v in row) + " |"
        for row in frame.iter_rows()
    ]
    return "\n".join([header, rule, *body])


def canonical(labels: pl.DataFrame) -> pl.DataFrame:
    """The compared columns, sorted: (subject_id, prediction_time, boolean_value)."""
    return labels.select(pl.col(c).cast(t) for c, t in EXPECTED_SCHEMA.items()).sort(
        list(EXPECTED_SCHEMA), nulls_last=True
    )


def notes_text(case: Case, aces: pl.DataFrame) -> str:
    parts = [f"# {case.name}\n", f"Tests: {case.tests}\n"]
    if case.section9:
        parts.append(
            f"**ehrbench differs from ACES here (spec section 9):** {case.section9} "
            "`expected_labels.parquet` holds what ehrbench must output; `aces_labels.parquet` "
            "is what ACES 0.7.3 gives.\n"
        )
    else:
        parts.append(
            "ehrbench must output exactly `aces_labels.parquet` (ACES 0.7.3), which agrees "
            "with the hand-worked answer.\n"
        )
    parts += ["## Events\n", markdown_table(case.events_frame()), ""]
    parts += ["## ACES 0.7.3 labels\n", markdown_table(canonical(aces)), ""]
    if case.section9:
        parts += ["## Expected ehrbench labels\n", markdown_table(case.expected_frame()), ""]
    return "\n".join(parts)


def build(case: Case) -> bool:
    """Run ACES on `case`, check it against the hand answer, and write the fixture folder."""
    with tempfile.TemporaryDirectory() as tmp:
        events_path = Path(tmp) / "events.parquet"
        cohort_path = Path(tmp) / "cohort.yaml"
        case.events_frame().write_parquet(events_path)
        cohort_path.write_text(case.cohort)
        predicates_path = None
        if case.predicates:
            predicates_path = Path(tmp) / "predicates.yaml"
            predicates_path.write_text(case.predicates)
        run = run_aces(cohort_path, events_path, predicates_path)
    aces, expected = canonical(run.labels), canonical(case.expected_frame())
    agrees = aces.equals(expected)
    if agrees == (case.section9 is not None):
        why = "ACES agrees with a section-9 case" if agrees else "ACES disagrees, no section 9"
        print(f"[{case.name}] NOT WRITTEN: {why}.\nACES:\n{aces}\nhand:\n{expected}")
        return False
    folder = GOLDENS / case.name
    folder.mkdir(parents=True, exist_ok=True)
    case.events_frame().write_parquet(folder / "events.parquet")
    (folder / "cohort.yaml").write_text(case.cohort)
    if case.predicates:
        (folder / "predicates.yaml").write_text(case.predicates)
    run.labels.write_parquet(folder / "aces_labels.parquet")
    if case.section9:
        case.expected_frame().write_parquet(folder / "expected_labels.parquet")
    else:
        (folder / "expected_labels.parquet").unlink(missing_ok=True)
    (folder / "notes.md").write_text(notes_text(case, run.labels))
    print(f"[{case.name}] written: {run.labels.height} ACES rows")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    args = parser.parse_args(argv)
    if not aces_available():
        print("ACES is not installed: run `bash benchmarks/aces_env.sh` first.")
        return 2
    chosen = [c for c in CASES if not args.cases or c.name in args.cases]
    ok = [build(case) for case in chosen]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
