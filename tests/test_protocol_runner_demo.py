"""`ehrbench demo` end to end on a tiny configuration: generate, extract, run, report, resume."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from ehrbench.cli import main

TINY = [
    "dataset.synthetic.subjects=300",
    "cohorts=[readmission_30d]",
    "models=[logreg]",
    "k=[4,all]",
    "seeds=[0]",
    "bootstrap.resamples=50",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--out", str(out), *TINY]) == 0
    return out


def test_demo_runs_the_whole_pipeline(demo, capsys):
    manifest = json.loads((demo / "manifest.json").read_text())
    assert manifest["dataset"]["synthetic"] == {"subjects": 300, "seed": 0, "shards": 2}
    assert manifest["runs"] == {"total": 2, "ok": 2, "failed": 0}
    assert (demo / "dataset" / "metadata" / "dataset.json").exists()
    assert (demo / "cohorts" / "readmission_30d" / "labels.parquet").exists()
    results = pl.read_parquet(demo / "results.parquet")
    assert set(results["k"]) == {"4", "all"}
    html = (demo / "report" / "report.html").read_text(encoding="utf-8")
    assert "Learning curves" in html and "data:image/png;base64," in html


def test_demo_rerun_resumes_and_prints_the_report(demo, capsys):
    stamp = (demo / "results.parquet").stat().st_mtime_ns
    runs = sorted(p.name for p in (demo / "runs").iterdir())
    assert main(["demo", "--out", str(demo), *TINY]) == 0
    captured = capsys.readouterr()
    assert f"report: {demo / 'report' / 'report.html'}" in captured.out
    assert "2 already in" in captured.err and "0 to compute" in captured.err
    assert sorted(p.name for p in (demo / "runs").iterdir()) == runs
    assert (demo / "results.parquet").stat().st_mtime_ns >= stamp


def test_demo_refuses_a_dataset_generated_with_other_settings(demo, capsys):
    changed = [t for t in TINY if not t.startswith("dataset.")] + ["dataset.synthetic.subjects=400"]
    assert main(["demo", "--out", str(demo), *changed]) == 2
    err = capsys.readouterr().err
    assert "was generated with" in err and "'subjects': 300" in err


def test_the_protocol_never_imports_the_report():
    # The demo composes the two (ehrbench.demo); the lower floor stands without the higher one.
    code = (
        "import sys; import ehrbench.protocol.commands, ehrbench.protocol.outputs; "
        "print(sorted(m for m in sys.modules if m.startswith('ehrbench.report')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
