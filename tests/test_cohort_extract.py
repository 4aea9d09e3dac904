"""One test per rule of the cohort spec's sections 2 to 6 (and 9), on hand-made event tables.

Each expected answer was worked out by hand from the spec; every case is also checked against
the plain-Python reference evaluator, so the two can only agree by both being right.
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import pytest
from cohort_reference import at, cohort, frame, plain, reference_labels, rows, window

from ehrbench.cohort.extract import extract, extract_events
from ehrbench.cohort.model import DerivedPredicate
from ehrbench.errors import EhrbenchError
from ehrbench.meds import LABEL_SCHEMA, open_dataset

ADM = plain("adm", "ADM")
DEATH = plain("death", "DEATH")
LAB = plain("lab", "LAB")


def run(c, data, audit=False):
    """Extract with the engine, check it against the reference, return the Extraction."""
    result = extract_events(c, frame(data), audit=audit)
    got = [tuple(r) for r in result.labels.select(list(LABEL_SCHEMA)[:3]).iter_rows()]
    assert got == reference_labels(c, data)
    return result


def labels(c, data):
    return [tuple(r) for r in run(c, data).labels.select(list(LABEL_SCHEMA)[:3]).iter_rows()]


def counts(c, data, column):
    """The audit column `window.pred` of every kept row."""
    return run(c, data, audit=True).audit[column].to_list()


def zero_window(*preds, si=True, ei=True):
    """Cohort triggered on `adm` with a window [trigger, trigger] counting `preds`."""
    has = {p.name: (0, None) for p in preds}  # always true: only makes the audit count them
    w = window("w", "trigger", "start", si, ei, has=has, index="end")
    return cohort([ADM, *preds], "adm", [w])


# ---- Section 2: predicates and counting ---------------------------------------------------


def test_two_matching_rows_at_one_time_count_two():
    data = rows((1, 0, "ADM"), (1, 0, "LAB"), (1, 0, "LAB"), (1, 1, "LAB"))
    assert counts(zero_window(LAB), data, "w.lab") == [2]


def test_derived_predicate_counts_zero_or_one():
    both = DerivedPredicate("both", "and", ("lab", "death"))
    either = DerivedPredicate("either", "or", ("lab", "death"))
    has = {"both": (0, None), "either": (0, None), "lab": (0, None)}
    c = cohort(
        [ADM, LAB, DEATH, both, either], "adm", [window("w", "trigger", "start + 5h", has=has)]
    )
    data = rows(
        (1, 0, "ADM"), (1, 1, "LAB"), (1, 1, "LAB"), (1, 1, "DEATH"), (1, 2, "LAB"), (1, 9, "LAB")
    )
    audit = run(c, data, audit=True).audit
    assert audit["w.both"].to_list() == [1]  # only hour 1 has both, however many rows
    assert audit["w.either"].to_list() == [2]  # hours 1 and 2
    assert audit["w.lab"].to_list() == [3]


def test_any_event_counts_distinct_timestamps():
    c = cohort([ADM], "adm", [window("w", "trigger", "start + 5h", has={"_ANY_EVENT": (3, 3)})])
    data = rows((1, 0, "ADM"), (1, 0, "X"), (1, 2, "X"), (1, 2, "Y"), (1, 2, "Z"), (1, 4, "X"))
    assert len(labels(c, data)) == 1  # hours 0, 2, 4: three timestamps, six rows
    assert counts(c, data, "w._ANY_EVENT") == [3]


def test_record_start_and_end_count_one_at_first_and_last_timestamp():
    data = rows((1, 0, "X"), (1, 0, "X"), (1, 3, "ADM"), (1, 7, "X"), (1, 7, "Y"))
    c = cohort(
        [ADM],
        "adm",
        [
            window("w", "null", "trigger + 100h", has={"_RECORD_START": (1, 1)}),
            window("v", "trigger", "null", has={"_RECORD_END": (1, 1)}),
        ],
    )
    audit = run(c, data, audit=True).audit
    assert audit["w._RECORD_START"].to_list() == [1]
    assert audit["v._RECORD_END"].to_list() == [1]
    assert audit["w.start"].to_list() == [at(0)]
    assert audit["v.end"].to_list() == [at(7)]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"value_min": 5.0}, 1),  # strict by default: 5.0 fails, 6.0 passes
        ({"value_min": 5.0, "value_min_inclusive": True}, 2),
        ({"value_max": 6.0}, 1),  # 5.0 passes, 6.0 fails
        ({"value_max": 6.0, "value_max_inclusive": True}, 2),
        ({"value_min": 5.0, "value_max": 6.0}, 0),
    ],
)
def test_value_bounds_strict_by_default(kwargs, expected):
    hi = plain("hi", "LAB", **kwargs)
    data = rows((1, 0, "ADM"), (1, 0, "LAB", 5.0), (1, 0, "LAB", 6.0), (1, 0, "LAB"))
    assert counts(zero_window(hi), data, "w.hi") == [expected]


def test_value_bound_is_compared_in_float32():
    # float32(1.2) is 1.20000005 > 1.2 in float64: widening would drop the row.
    inclusive = plain("inc", "LAB", value_max=1.2, value_max_inclusive=True)
    exclusive = plain("exc", "LAB", value_max=1.2)
    data = rows((1, 0, "ADM"), (1, 0, "LAB", 1.2))
    audit = run(zero_window(inclusive, exclusive), data, audit=True).audit
    assert audit["w.inc"].to_list() == [1]
    assert audit["w.exc"].to_list() == [0]


def test_null_numeric_value_never_passes_a_bound():
    low = plain("low", "LAB", value_max=100.0, value_max_inclusive=True)
    data = rows((1, 0, "ADM"), (1, 0, "LAB", None), (1, 0, "LAB", 1.0))
    assert counts(zero_window(low), data, "w.low") == [1]


def test_regex_code_is_an_unanchored_search_and_bounds_apply_to_it():
    adm = plain("adm", ("regex", "ADMISSION"))
    high = plain("high", ("regex", "^LAB//5"), value_min=1.0)
    c = cohort([adm, high], "adm", [window("w", "trigger", "start", has={"high": (0, None)})])
    data = rows(
        (1, 0, "HOSPITAL_ADMISSION//URGENT"),
        (1, 0, "LAB//50912", 2.0),
        (1, 0, "LAB//50912", 0.5),
        (1, 0, "XLAB//5", 2.0),
    )
    assert counts(c, data, "w.high") == [1]


def test_any_of_codes():
    icu = plain("icu", ["ICU//MICU", "ICU//SICU"])
    data = rows((1, 0, "ADM"), (1, 0, "ICU//MICU"), (1, 0, "ICU//SICU"), (1, 0, "ICU//CCU"))
    assert counts(zero_window(icu), data, "w.icu") == [2]


def test_other_columns_are_equality_tests():
    art = plain("art", "BP", other_cols=(("site", "arterial"),))
    data = rows(
        (1, 0, "ADM", None, {"site": None}),
        (1, 0, "BP", 90.0, {"site": "arterial"}),
        (1, 0, "BP", 91.0, {"site": "cuff"}),
        (1, 0, "BP", 92.0, {"site": None}),
    )
    assert counts(zero_window(art), data, "w.art") == [1]


def test_missing_data_column_is_an_error_naming_the_predicate():
    art = plain("art", "BP", other_cols=(("site", "arterial"),))
    with pytest.raises(EhrbenchError, match="predicate `art` tests column `site`"):
        extract_events(zero_window(art), frame(rows((1, 0, "ADM"))))


# ---- Section 3: demographic filter ----------------------------------------------------------

MALE = plain("male", "GENDER//M", static=True)
FEMALE = plain("female", "GENDER//F", static=True)
DEMO_DATA = rows(
    (1, None, "GENDER//M"), (1, 0, "ADM"),
    (2, None, "GENDER//F"), (2, 0, "ADM"),
    (3, 0, "ADM"),  # no static rows at all
)  # fmt: skip


def test_demographic_filter_keeps_matching_subjects_only():
    c = cohort([ADM], "adm", [window("w", "trigger", "start", index="end")], demographics=[MALE])
    assert labels(c, DEMO_DATA) == [(1, at(0), None)]


def test_subjects_without_static_rows_kept_when_no_demographics():
    c = cohort([ADM], "adm", [window("w", "trigger", "start", index="end")])
    assert [r[0] for r in labels(c, DEMO_DATA)] == [1, 2, 3]


def test_exclusive_demographics_give_an_empty_cohort_and_a_warning():
    c = cohort([ADM], "adm", [window("w", "trigger", "start", index="end")], [MALE, FEMALE])
    result = extract_events(c, frame(DEMO_DATA))
    assert "demographic filter" in result.warnings[0]
    assert result.labels.is_empty()
    assert result.labels.schema == pl.Schema(LABEL_SCHEMA)
    assert result.attrition.steps[0].subjects_kept == 0


def test_referenced_static_predicate_filters_like_a_demographic():
    either = DerivedPredicate("either", "or", ("adm", "male"))
    c = cohort([ADM, MALE, either], "either", [window("w", "trigger", "start", index="end")])
    assert labels(c, DEMO_DATA) == [(1, at(0), None)]


def test_static_trigger_is_an_error():
    c = cohort([MALE], "male", [window("w", "trigger", "start", index="end")])
    with pytest.raises(EhrbenchError, match="trigger `male` is a static predicate"):
        extract_events(c, frame(DEMO_DATA))


def test_static_predicate_in_a_window_is_an_error():
    c = cohort([ADM, MALE], "adm", [window("w", "trigger", "start", has={"male": (1, None)})])
    with pytest.raises(EhrbenchError, match="window `w` uses static predicate `male`"):
        extract_events(c, frame(DEMO_DATA))


# ---- Section 4: triggers --------------------------------------------------------------------


def test_repeated_codes_at_one_time_are_one_trigger_and_several_times_several_rows():
    c = cohort([ADM], "adm", [window("w", "trigger", "start", index="end")])
    data = rows((1, 0, "ADM"), (1, 0, "ADM"), (1, 5, "ADM"), (2, 3, "ADM"), (2, 3, "ADM"))
    assert labels(c, data) == [(1, at(0), None), (1, at(5), None), (2, at(3), None)]


# ---- Section 5: windows ---------------------------------------------------------------------


@pytest.mark.parametrize(("end_inclusive", "expected"), [(True, True), (False, False)])
def test_event_exactly_at_trigger_plus_delta(end_inclusive, expected):
    c = cohort(
        [ADM, DEATH],
        "adm",
        [window("w", "trigger", "start + 24h", False, end_inclusive, label="death", index="start")],
    )
    data = rows((1, 0, "ADM"), (1, 24, "DEATH"))
    assert labels(c, data) == [(1, at(0), expected)]


@pytest.mark.parametrize(("start_inclusive", "expected"), [(True, True), (False, False)])
def test_event_at_the_trigger_itself(start_inclusive, expected):
    c = cohort(
        [ADM, DEATH],
        "adm",
        [
            window(
                "w", "trigger", "start + 24h", start_inclusive, True, label="death", index="start"
            )
        ],
    )
    data = rows((1, 0, "ADM"), (1, 0, "DEATH"))
    assert labels(c, data) == [(1, at(0), expected)]


def test_zero_length_event_bound_window_with_end_inclusive():
    # end_inclusive true: the death at the trigger ends the window there (zero length).
    c = cohort(
        [ADM, DEATH],
        "adm",
        [window("w", "trigger", "start -> death", True, True, label="death", index="end")],
    )
    data = rows((1, 0, "ADM"), (1, 0, "DEATH"), (1, 5, "DEATH"))
    assert labels(c, data) == [(1, at(0), True)]


def test_zero_length_event_bound_window_without_end_inclusive_takes_a_later_event():
    c = cohort(
        [ADM, DEATH],
        "adm",
        [window("w", "trigger", "start -> death", True, False, label="death", index="end")],
    )
    data = rows((1, 0, "ADM"), (1, 0, "DEATH"), (1, 5, "DEATH"), (2, 0, "ADM"), (2, 0, "DEATH"))
    # Subject 1: the end is hour 5 (excluded), the window still holds the hour-0 death.
    # Subject 2: no strictly later death, so the trigger is dropped.
    assert labels(c, data) == [(1, at(5), True)]


def test_zero_length_window_counts_the_timestamp_only_if_both_edges_include_it():
    c = cohort(
        [ADM, DEATH],
        "adm",
        [window("w", "trigger", "start -> death", False, True, label="death", index="end")],
    )
    data = rows((1, 0, "ADM"), (1, 0, "DEATH"))
    assert labels(c, data) == [(1, at(0), False)]


def test_prev_event_boundary_and_its_inclusivity():
    data = rows((1, 2, "LAB"), (1, 5, "LAB"), (1, 5, "ADM"), (1, 9, "ADM"))
    for si, expected in ((True, [at(5), at(5)]), (False, [at(2), at(5)])):
        c = cohort(
            [ADM, LAB],
            "adm",
            [window("w", "end <- lab", "trigger", si, True, index="start")],
        )
        assert [r[1] for r in labels(c, data)] == expected


@pytest.mark.parametrize(("si", "ei"), [(True, True), (True, False), (False, True), (False, False)])
def test_event_bound_side_referring_outside_never_takes_its_reference_time(si, ei):
    # ACES 0.7.3 (probed with aces-cli): `start: trigger -> lab` skips a lab at the trigger
    # time whatever the flags; `end: trigger <- lab` likewise finds only earlier labs.
    data = rows((1, 0, "ADM"), (1, 0, "LAB"), (1, 5, "LAB"), (1, 6, "LAB"), (2, 0, "ADM"))
    forward = cohort(
        [ADM, LAB], "adm", [window("w", "trigger -> lab", "start + 2h", si, ei, index="start")]
    )
    assert [r[1] for r in labels(forward, data)] == [at(5)]
    backward = cohort(
        [ADM, LAB], "adm", [window("w", "end - 2h", "trigger <- lab", si, ei, index="end")]
    )
    assert labels(backward, data) == []


def test_next_event_boundary_not_found_drops_the_trigger():
    # Section 9: ACES leaks a null row here; ehrbench drops the trigger.
    c = cohort(
        [ADM, DEATH],
        "adm",
        [window("w", "trigger", "start -> death", False, True, label="death", index="start")],
    )
    data = rows((1, 0, "ADM"), (1, 3, "DEATH"), (1, 4, "ADM"))
    assert labels(c, data) == [(1, at(0), True)]


def test_null_start_is_the_first_event_and_exclusive_drops_at_first_event():
    data = rows((1, 0, "ADM"), (1, 3, "LAB"), (1, 6, "ADM"))
    for si, expected in ((True, [at(0), at(0)]), (False, [at(0)])):
        c = cohort([ADM, LAB], "adm", [window("w", "null", "trigger", si, True, index="start")])
        assert [r[1] for r in labels(c, data)] == expected


def test_null_end_is_the_last_event_and_exclusive_drops_at_last_event():
    data = rows((1, 0, "ADM"), (1, 3, "LAB"), (1, 6, "ADM"))
    for ei, expected in ((True, [at(6), at(6)]), (False, [at(6)])):
        c = cohort([ADM, LAB], "adm", [window("w", "trigger", "null", True, ei, index="end")])
        assert [r[1] for r in labels(c, data)] == expected


def test_start_minus_delta_window_edges_and_index_timestamp():
    # [trigger - 24h, trigger]: start_inclusive false governs the earlier edge (hour 0).
    c = cohort(
        [ADM, LAB],
        "adm",
        [window("w", "end - 24h", "trigger", False, True, label="lab", index="start")],
    )
    assert labels(c, rows((1, 0, "LAB"), (1, 24, "ADM"))) == [(1, at(0), False)]
    assert labels(c, rows((1, 1, "LAB"), (1, 24, "ADM"))) == [(1, at(0), True)]


def test_nested_reference_to_another_windows_end():
    c = cohort(
        [ADM, DEATH],
        "adm",
        [
            window("gap", "trigger", "start + 24h", False, True, has={"death": (None, 0)}),
            window("target", "gap.end", "start + 48h", False, True, label="death", index="start"),
        ],
    )
    data = rows((1, 0, "ADM"), (1, 24, "DEATH"), (2, 0, "ADM"), (2, 30, "DEATH"),
                (3, 0, "ADM"), (3, 72, "DEATH"), (4, 0, "ADM"), (4, 73, "DEATH"))  # fmt: skip
    assert labels(c, data) == [(2, at(24), True), (3, at(24), True), (4, at(24), False)]


@pytest.mark.parametrize(
    ("bounds", "kept"),
    [((None, 0), [1]), ((2, None), [3, 4]), ((1, 2), [2, 3]), ((3, 3), [4])],
)
def test_has_ranges_are_inclusive(bounds, kept):
    c = cohort(
        [ADM, LAB], "adm", [window("w", "trigger", "start + 10h", has={"lab": bounds}, index="end")]
    )
    data = [r for sid in (1, 2, 3, 4) for r in rows((sid, 0, "ADM"))]
    data += [r for sid in (2, 3, 4) for r in rows(*((sid, h, "LAB") for h in range(1, sid)))]
    assert [r[0] for r in labels(c, data)] == kept


def test_label_is_count_greater_than_zero():
    c = cohort([ADM, LAB], "adm", [window("w", "trigger", "start + 2h", label="lab", index="end")])
    data = rows((1, 0, "ADM"), (1, 1, "LAB"), (1, 1, "LAB"), (2, 0, "ADM"))
    assert labels(c, data) == [(1, at(2), True), (2, at(2), False)]


def test_negated_label_is_true_when_the_count_is_zero():
    # ehrbench extension `label_negated`: the complement of the count > 0 label.
    w = window("w", "trigger", "start + 2h", label="lab", index="end")
    c = cohort([ADM, LAB], "adm", [replace(w, label_negated=True)])
    data = rows((1, 0, "ADM"), (1, 1, "LAB"), (2, 0, "ADM"))
    assert labels(c, data) == [(1, at(2), False), (2, at(2), True)]


def test_no_index_timestamp_gives_null_prediction_time_and_a_warning():
    c = cohort([ADM], "adm", [window("w", "trigger", "start + 2h")])
    result = extract_events(c, frame(rows((1, 0, "ADM"))))
    assert any("index_timestamp" in message for message in result.warnings)
    assert result.labels["prediction_time"].to_list() == [None]


def test_multiple_triggers_per_subject_each_get_their_own_row():
    c = cohort(
        [ADM, DEATH],
        "adm",
        [window("w", "trigger", "start + 10h", False, True, label="death", index="end")],
    )
    data = rows((1, 0, "ADM"), (1, 5, "ADM"), (1, 12, "DEATH"), (1, 30, "ADM"))
    assert labels(c, data) == [(1, at(10), False), (1, at(15), True), (1, at(40), False)]


def test_has_applies_to_a_zero_length_window():
    # Section 9 (ACES #212): `end: start` windows keep their constraints.
    c = cohort(
        [ADM, LAB],
        "adm",
        [window("w", "trigger", "start", True, True, has={"lab": (None, 0)}, index="end")],
    )
    data = rows((1, 0, "ADM"), (1, 0, "LAB"), (2, 0, "ADM"), (2, 1, "LAB"))
    assert labels(c, data) == [(2, at(0), None)]


# ---- Section 6: output ----------------------------------------------------------------------


def write_shards(root, *shards):
    for i, data in enumerate(shards):
        (root / "data").mkdir(parents=True, exist_ok=True)
        frame(data).write_parquet(root / "data" / f"{i}.parquet")
    return open_dataset(root)


def test_extract_over_shards_sorts_by_subject_and_time(tmp_path):
    c = cohort([ADM], "adm", [window("w", "trigger", "start", index="end")])
    dataset = write_shards(tmp_path, rows((5, 1, "ADM")), rows((2, 1, "ADM"), (2, 3, "ADM")))
    result = extract(c, dataset)
    assert result.labels.select("subject_id", "prediction_time").rows() == [
        (2, at(1)),
        (2, at(3)),
        (5, at(1)),
    ]
    assert result.labels.schema == pl.Schema(LABEL_SCHEMA)
    assert result.attrition.steps[1].triggers_kept == 3


def test_empty_cohort_is_an_empty_table_with_the_full_schema_and_a_warning(tmp_path):
    c = cohort([ADM, LAB], "lab", [window("w", "trigger", "start", index="end")])
    dataset = write_shards(tmp_path, rows((1, 0, "ADM")))
    result = extract(c, dataset, audit=True)
    assert any("cohort is empty" in message for message in result.warnings)
    assert result.labels.is_empty()
    assert result.labels.schema == pl.Schema(LABEL_SCHEMA)
    assert result.audit.is_empty()


def test_all_equal_labels_warn():
    c = cohort([ADM, LAB], "adm", [window("w", "trigger", "start", label="lab", index="end")])
    result = extract_events(c, frame(rows((1, 0, "ADM"), (2, 0, "ADM"))))
    assert any("every label is False" in message for message in result.warnings)


def test_extraction_is_pure():
    # Section 9 (ACES #198): the same config twice gives the same labels.
    c = cohort([ADM, LAB], "adm", [window("w", "trigger", "start + 1h", label="lab", index="end")])
    data = frame(rows((1, 0, "ADM"), (1, 1, "LAB"), (2, 0, "ADM")))
    first = extract_events(c, data).labels
    assert first.equals(extract_events(c, data).labels)


def test_attrition_counts_each_step():
    c = cohort(
        [ADM, LAB, DEATH],
        "adm",
        [
            window("w", "trigger", "start + 5h", has={"lab": (1, None)}),
            window("t", "w.end", "start -> death", index="end"),
        ],
        demographics=[MALE],
    )
    data = rows(
        (1, None, "GENDER//M"), (1, 0, "ADM"), (1, 1, "LAB"), (1, 9, "DEATH"), (1, 20, "ADM"),
        (2, None, "GENDER//M"), (2, 0, "ADM"), (2, 1, "LAB"),
        (3, None, "GENDER//F"), (3, 0, "ADM"),
    )  # fmt: skip
    steps = run(c, data).attrition.steps
    table = [(s.subjects_in, s.subjects_kept, s.triggers_in, s.triggers_kept) for s in steps]
    assert table == [
        (3, 2, None, None),  # demographics: subject 3 is female
        (2, 2, None, 3),  # trigger: three admissions
        (2, 2, 3, 3),  # w placed
        (2, 2, 3, 2),  # w has lab: the hour-20 admission has no lab
        (2, 1, 2, 1),  # t placed: subject 2 never dies
    ]
    assert "w: has lab in (1, None)" in run(c, data).attrition.render()


def test_a_subject_split_across_shards_is_an_error(tmp_path):
    c = cohort([ADM], "adm", [window("w", "trigger", "start", index="end")])
    for i, data in enumerate([rows((1, 0, "ADM")), rows((1, 5, "ADM"))]):
        (tmp_path / "data").mkdir(exist_ok=True)
        frame(data).write_parquet(tmp_path / "data" / f"{i}.parquet")
    dataset = open_dataset(tmp_path, validate=False)
    with pytest.raises(EhrbenchError, match="subject 1 of .*1.parquet also appears"):
        extract(c, dataset)


def test_an_unreadable_shard_is_an_error_naming_it(tmp_path):
    c = cohort([ADM], "adm", [window("w", "trigger", "start", index="end")])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "0.parquet").write_text("not parquet")
    with pytest.raises(EhrbenchError, match="0.parquet is not a readable parquet"):
        extract(c, open_dataset(tmp_path, validate=False))


def test_a_missing_column_is_found_before_reading_and_names_the_shard(tmp_path):
    art = plain("art", "BP", other_cols=(("site", "arterial"),))
    dataset = write_shards(tmp_path, rows((1, 0, "ADM")), rows((2, 0, "ADM")))
    with pytest.raises(EhrbenchError, match=r"`art` tests column `site`.*data/0\.parquet"):
        extract(zero_window(art), dataset)


def test_predicates_are_planned_once_per_extraction(tmp_path, monkeypatch):
    from ehrbench.cohort import extract as engine

    calls = []
    plan = engine.plan_predicates
    monkeypatch.setattr(
        engine, "plan_predicates", lambda c, **how: calls.append(c) or plan(c, **how)
    )
    c = cohort([ADM, LAB], "adm", [window("w", "trigger", "start + 1h", label="lab", index="end")])
    dataset = write_shards(tmp_path, rows((1, 0, "ADM")), rows((2, 0, "ADM"), (2, 1, "LAB")))
    assert extract(c, dataset, audit=True).labels.height == 2
    assert len(calls) == 1
