"""Tabular features agree with MEDS-Tab 0.2.0's cell by cell, up to MEDS-Tab's known departures.

Runs benchmarks/compare_meds_tab.py's comparison on a tiny synthetic dataset: every differing
cell must have a named cause (none `unexplained`), and ehrbench's cells must equal the
definition recomputed from the raw events. Needs MEDS-Tab in its own virtual environment at
benchmarks/.venv-medstab (`bash benchmarks/meds_tab_env.sh`; never a dependency of ehrbench);
skipped when that environment is absent. Slow: MEDS-Tab takes about a minute even here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ehrbench.synth import generate_dataset

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
MEDSTAB = BENCHMARKS / ".venv-medstab" / "bin" / "meds-tab-describe"


@pytest.mark.slow
def test_every_difference_from_meds_tab_has_a_cause(tmp_path, monkeypatch):
    if not MEDSTAB.exists():
        pytest.skip("benchmarks/.venv-medstab not present: run benchmarks/meds_tab_env.sh")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from compare_meds_tab import featurise_and_compare

    root = generate_dataset(tmp_path / "meds", n_subjects=40, seed=0).root
    result = featurise_and_compare(Path(root), tmp_path / "work")

    assert result["cells"]["compared"] > 10_000
    assert "unexplained" not in result["differing_by_cause"]
    assert result["ehrbench_vs_definition"]["differing"] == 0
