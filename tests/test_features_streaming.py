"""The feature matrix written in pieces, and the grouped running figures, against their
definitions bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrbench.features import matrix as matrix_module
from ehrbench.features.matrix import Layout, MatrixBuilder
from ehrbench.features.reductions import _accumulate_in_groups, _running_figures
from ehrbench.features.storage import ArrayPieces, save_csr, write_npz


def _blocks(rng: np.random.Generator, n_rows: int, n_features: int, n_blocks: int):
    """Label rows dealt at random into `n_blocks` blocks, each a random CSR block of its rows."""
    owner = rng.integers(0, n_blocks, n_rows)
    for block in range(n_blocks):
        rows = np.flatnonzero(owner == block)
        dense = rng.random((rows.shape[0], n_features)) * (
            rng.random((rows.shape[0], n_features)) < 0.3
        )
        yield rows, dense.astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("piece_entries", [1, 7, 1 << 23])
def test_written_matrix_is_the_saved_matrix_byte_for_byte(
    tmp_path, monkeypatch, seed, piece_entries
):
    monkeypatch.setattr(matrix_module, "PIECE_ENTRIES", piece_entries)
    rng = np.random.default_rng(seed)
    layout = Layout(n_static=2, value_codes=[True, False, False], n_windows=2)
    n_rows = int(rng.integers(0, 40))
    expected = np.zeros((n_rows, layout.n_features), dtype=np.float32)
    with MatrixBuilder(layout) as builder:
        for rows, dense in _blocks(rng, n_rows, layout.n_features, int(rng.integers(1, 5))):
            builder.add(rows, sp.csr_matrix(dense))
            expected[rows] = dense
        whole = builder.matrix()
        shape = builder.write(tmp_path / "written.npz")
    save_csr(tmp_path / "saved.npz", whole)
    assert shape == whole.shape == expected.shape
    assert np.array_equal(whole.toarray(), expected) and whole.has_sorted_indices
    assert (tmp_path / "written.npz").read_bytes() == (tmp_path / "saved.npz").read_bytes()
    assert (sp.load_npz(tmp_path / "written.npz") != whole).nnz == 0


def test_array_pieces_write_the_bytes_of_the_whole_array(tmp_path):
    array = np.arange(1000, dtype=np.float32) / 7
    pieces = ArrayPieces(np.float32, 1000, lambda: np.array_split(array, 13))
    write_npz(tmp_path / "pieces.npz", {"x": pieces, "y": np.arange(3)})
    write_npz(tmp_path / "whole.npz", {"x": array, "y": np.arange(3)})
    assert (tmp_path / "pieces.npz").read_bytes() == (tmp_path / "whole.npz").read_bytes()
    short = ArrayPieces(np.float32, 1001, lambda: [array])
    with pytest.raises(ValueError, match="pieces of 1000 items given for an array of 1001"):
        write_npz(tmp_path / "short.npz", {"x": short})
    assert not (tmp_path / "short.npz").exists()  # nothing half-written is left


def _loop(ufunc, values, starts, start_value):
    """The definition: a loop over each group, from `start_value`."""
    out = np.empty_like(values)
    for lo, hi in zip(starts, [*starts[1:], len(values)], strict=True):
        running = start_value
        for i in range(lo, hi):
            running = ufunc(running, values[i])
            out[i] = running
    return out


# MEDS values are float32; NaN is "no value".
_VALUES = st.floats(allow_nan=True, allow_infinity=False, width=32) | st.sampled_from([0.0, -0.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_VALUES, min_size=1, max_size=40), min_size=1, max_size=30))
def test_running_figures_are_a_loop_over_each_group_bit_for_bit(groups):
    value = np.array([v for group in groups for v in group], dtype=np.float64)
    lengths = [len(group) for group in groups]
    starts = np.cumsum([0, *lengths[:-1]])
    valued = ~np.isnan(value)
    running = _running_figures(value, valued, starts)
    summed = np.where(valued, value, 0.0)
    expected = {
        "v_sum": _loop(np.add, summed, starts, 0.0),
        "v_sum_sq": _loop(np.add, summed * summed, starts, 0.0),
        "v_min": _loop(np.minimum, np.where(valued, value, math.inf), starts, math.inf),
        "v_max": _loop(np.maximum, np.where(valued, value, -math.inf), starts, -math.inf),
    }
    expected["v_min"] = expected["v_min"].astype(np.float32)
    expected["v_max"] = expected["v_max"].astype(np.float32)
    for name, values in expected.items():
        assert running[name].tobytes() == values.tobytes(), name


def test_accumulate_in_groups_of_every_length_class():
    lengths = [1, 2, 3, 4, 5, 8, 9, 1, 300]
    starts = np.cumsum([0, *lengths[:-1]])
    values = np.random.default_rng(0).normal(size=sum(lengths))
    got = _accumulate_in_groups(np.add, values, starts, 0.0)
    assert got.tobytes() == _loop(np.add, values, starts, 0.0).tobytes()
