"""No leakage, as properties: events after a row's prediction time never reach its features, and
nothing outside the fitting split reaches the vocabulary or the statistics."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meds_builders import events_frame, write_meds_folder

from ehrbench.features.sequence import (
    SequenceConfig,
    build_sequences,
    fit_sequences,
    transform_sequences,
)
from ehrbench.features.tabular import TabularConfig, build_tabular, fit_tabular, transform_tabular
from ehrbench.meds import open_dataset

BASE = datetime(2021, 1, 1)
CODES = ("A", "B", "LAB//1//u", "LAB//2//u")
SUBJECTS = (1, 2, 3)
SPLITS = {1: "train", 2: "train", 3: "held_out"}
TAB = TabularConfig(windows=("1d", "3d", "full"), min_count=1)
SEQ = SequenceConfig(max_events=6, min_count=1)

# An event: (subject, hours after BASE, code index, value or None). Values are multiples of 1/4
# so that every sum is exact and the comparison can be exact too.
event = st.tuples(
    st.sampled_from(SUBJECTS),
    st.integers(0, 24 * 10),
    st.integers(0, len(CODES) - 1),
    st.one_of(st.none(), st.integers(-40, 400).map(lambda q: q / 4)),
)
history = st.lists(event, min_size=1, max_size=40)


def _frame(events) -> pl.DataFrame:
    rows = [(s, None, "GENDER//F" if s % 2 else "GENDER//M", None) for s in SUBJECTS]
    rows += [(s, BASE - timedelta(days=365 * (20 + s)), "MEDS_BIRTH", None) for s in SUBJECTS]
    rows += [(s, BASE + timedelta(hours=h), CODES[c], v) for s, h, c, v in events]
    return events_frame(rows)


def _dataset(root: Path, events):
    return open_dataset(write_meds_folder(root, _frame(events), SPLITS, shards=2))


def _labels(times: list[tuple[int, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "subject_id": [s for s, _ in times],
            "prediction_time": [BASE + timedelta(hours=h) for _, h in times],
        },
        schema={"subject_id": pl.Int64, "prediction_time": pl.Datetime("us")},
    )


def _tab_row(features, row: int) -> tuple[list, list]:
    one = features.matrix[row]
    return one.indices.tolist(), one.data.tolist()


def _seq_row(features, row: int) -> list:
    return [
        getattr(features, name)[row].tolist()
        for name in ("codes", "values", "value_mask", "hours_before", "lengths", "static")
    ] + [float(features.age_years[row])]


label_times = st.lists(
    st.tuples(st.sampled_from(SUBJECTS), st.integers(0, 24 * 10)), min_size=1, max_size=5
)


@st.composite
def future_change(draw):
    """A history, label rows, one chosen row, and a history differing only after its time."""
    events = draw(history)
    labels = draw(label_times)
    row = draw(st.integers(0, len(labels) - 1))
    subject, t = labels[row]
    kept = [e for e in events if not (e[0] == subject and e[1] > t)]
    later = st.tuples(
        st.just(subject),
        st.integers(t + 1, t + 2) | st.integers(t + 1, t + 24 * 5),  # favour the edge
        st.integers(0, len(CODES) - 1),
        st.one_of(st.none(), st.integers(-40, 400).map(lambda q: q / 4)),
    )
    changed = kept + draw(st.lists(later, max_size=8))
    return events, changed, labels, row


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(future_change())
def test_events_after_prediction_time_never_change_a_row(case):
    events, changed, times, row = case
    labels = _labels(times)
    with tempfile.TemporaryDirectory() as tmp:
        before = _dataset(Path(tmp) / "a", events)
        after = _dataset(Path(tmp) / "b", changed)
        tab_vocab = fit_tabular(before, labels, list(SUBJECTS), TAB)
        seq_vocab = fit_sequences(before, labels, list(SUBJECTS), SEQ)
        tab = [transform_tabular(d, labels, tab_vocab) for d in (before, after)]
        seq = [transform_sequences(d, labels, seq_vocab) for d in (before, after)]
    assert _tab_row(tab[0], row) == _tab_row(tab[1], row)
    assert _seq_row(seq[0], row) == _seq_row(seq[1], row)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history, label_times, st.lists(event, max_size=10))
def test_changes_after_every_label_keep_the_whole_pipeline(events, times, extra):
    """Fit and transform together: events after each subject's last label change nothing."""
    last = {s: max(h for sub, h in times if sub == s) for s, _ in times}
    kept = [e for e in events if e[0] not in last or e[1] <= last[e[0]]]
    added = [(s, last[s] + 1 + h, c, v) for s, h, c, v in extra if s in last]
    labels = _labels(times)
    with tempfile.TemporaryDirectory() as tmp:
        built = []
        for name, evs in (("a", events), ("b", kept + added)):
            dataset = _dataset(Path(tmp) / name, evs)
            built.append(
                (
                    build_tabular(dataset, labels, TAB, fit_split=("train", "held_out")),
                    build_sequences(dataset, labels, SEQ, fit_split=("train", "held_out")),
                )
            )
    (tab_a, seq_a), (tab_b, seq_b) = built
    assert tab_a.feature_names == tab_b.feature_names
    assert (tab_a.matrix != tab_b.matrix).nnz == 0
    assert seq_a.vocabulary == seq_b.vocabulary
    for row in range(labels.height):
        assert _seq_row(seq_a, row) == _seq_row(seq_b, row)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history, st.lists(event, max_size=15))
def test_held_out_events_never_change_vocabulary_or_statistics(events, noise):
    """Replace every event of the held_out subject (3): train rows and fitted state stay."""
    times = [(1, 24 * 5), (2, 24 * 8), (3, 24 * 6), (1, 24 * 9)]
    labels = _labels(times)
    train_only = [e for e in events if SPLITS[e[0]] == "train"]
    swapped = train_only + [(3, h, c, v) for _, h, c, v in noise]
    with tempfile.TemporaryDirectory() as tmp:
        out = []
        for name, evs in (("a", events), ("b", swapped)):
            dataset = _dataset(Path(tmp) / name, evs)
            tab = build_tabular(dataset, labels, TAB)
            seq_vocab = fit_sequences(dataset, labels, [1, 2], SEQ)
            out.append((tab, seq_vocab, transform_sequences(dataset, labels, seq_vocab)))
    (tab_a, vocab_a, seq_a), (tab_b, vocab_b, seq_b) = out
    assert tab_a.vocabulary == tab_b.vocabulary
    assert vocab_a == vocab_b  # codes, means, stds, static codes
    for row in (0, 1, 3):  # the train rows
        assert _tab_row(tab_a, row) == _tab_row(tab_b, row)
        assert _seq_row(seq_a, row) == _seq_row(seq_b, row)
    assert np.array_equal(seq_a.static[2], seq_b.static[2])  # same static rows for subject 3
