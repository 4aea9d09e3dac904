"""The report: built from a small real run, every section present, images embedded."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import shutil

import polars as pl
import pytest
from protocol_helpers import COHORT, tiny_dataset, tiny_suite

import ehrbench.protocol.outputs as outputs_module
import ehrbench.protocol.runner as runner_module
import ehrbench.report.tables as tables_module
from ehrbench import __version__
from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.models.cost import COST_COLUMNS
from ehrbench.protocol.manifest import MANIFEST_FILE, Manifest, RunCounts
from ehrbench.protocol.outputs import write_outputs, write_tables
from ehrbench.protocol.runner import GridRunner
from ehrbench.protocol.suite import load_suite
from ehrbench.report.build import SECTIONS, build_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A tiny grid with one run made to fail, and its result tables."""
    folder = tmp_path_factory.mktemp("report")
    dataset = tiny_dataset(folder / "meds")
    suite = load_suite(tiny_suite(folder, dataset))
    real = runner_module.fit_and_predict

    def flaky(name, *args, **kwargs):
        if name == "lightgbm" and kwargs["seed"] == 1:
            raise ValueError("failure kept for the report")
        return real(name, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner_module, "fit_and_predict", flaky)
        write_outputs(GridRunner(suite).run())
    return suite.output


@pytest.fixture(scope="module")
def report(results):
    html_path, md_path = build_report(results)
    return (
        html_path.read_text(encoding="utf-8"),
        md_path.read_text(encoding="utf-8"),
        md_path.parent,
    )


def test_header_names_fingerprint_version_hash_and_date(results, report):
    html, markdown, _ = report
    manifest = json.loads((results / "manifest.json").read_text())
    for text in (html, markdown):
        assert manifest["dataset"]["fingerprint"] in text
        assert manifest["config_hash"] in text
        assert __version__ in text
        assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", text)


def test_every_section_is_present(report):
    html, markdown, _ = report
    for anchor, _ in SECTIONS:
        assert f'id="{anchor}"' in html
    for heading in (
        "## Macro-average over cohorts",
        "## Learning curves",
        "## Leaderboard at k = all",
        "## Paired comparisons against logreg",
        "## Calibration at k = all",
        "## Subgroups at k = all",
        "## Cohorts",
        "## Failed runs",
        f"### {COHORT}",
        "### Win rate against logreg across cohorts",
    ):
        assert heading in markdown, heading
    assert "failure kept for the report" in markdown
    assert "ValueError" in html
    for level in ("F", "M"):
        assert f"| {level} |" in markdown or f" {level} |" in markdown
    assert "trigger" in markdown  # the attrition table


def test_html_is_self_contained_with_real_png_images(report):
    html, _, _ = report
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3  # macro curves, one cohort's learning curves, calibration
    assert all(base64.b64decode(data).startswith(PNG_MAGIC) for data in images)
    assert not re.search(r'(src|href)="(?!data:|#)', html)  # nothing outside the file


def test_markdown_figures_exist(report):
    _, markdown, folder = report
    names = re.findall(r"\]\((figures/[^)]+\.png)\)", markdown)
    assert names
    for name in names:
        assert (folder / name).read_bytes().startswith(PNG_MAGIC)


def test_leaderboard_cells_carry_intervals(report):
    _, markdown, _ = report
    leaderboard = markdown.split("## Leaderboard at k = all")[1].split("## Paired")[0]
    row = next(line for line in leaderboard.splitlines() if line.startswith(f"| {COHORT}"))
    assert re.search(r"0\.\d{3} \[0\.\d{3}, [01]\.\d{3}\]", row)


def test_report_command_and_missing_inputs(results, tmp_path, capsys):
    out = tmp_path / "elsewhere"
    assert main(["report", str(results), "--out", str(out)]) == 0
    assert (out / "report.html").exists() and (out / "report.md").exists()
    assert str(out / "report.html") in capsys.readouterr().out
    with pytest.raises(EhrbenchError, match="lacks \\['manifest.json'"):
        build_report(tmp_path)
    assert main(["report", str(tmp_path / "absent")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_the_manifest_reads_back_as_written(results, tmp_path):
    manifest = Manifest.read(results)
    assert manifest.runs.failed == 1 and manifest.cohort_order == (COHORT,)
    assert manifest.cohorts[COHORT].attrition["steps"]
    manifest.write(tmp_path)
    assert (tmp_path / MANIFEST_FILE).read_bytes() == (results / MANIFEST_FILE).read_bytes()
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"suite": {}}), encoding="utf-8")
    with pytest.raises(EhrbenchError, match="is not a manifest this ehrbench can read"):
        Manifest.read(tmp_path)


def test_an_existing_report_is_replaced_only_with_overwrite(results, report, capsys):
    _, _, folder = report
    edited = folder / "report.md"
    edited.write_text("my notes", encoding="utf-8")
    assert main(["report", str(results)]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert edited.read_text(encoding="utf-8") == "my notes"
    assert main(["report", str(results), "--overwrite"]) == 0
    assert edited.read_text(encoding="utf-8").startswith("# ehrbench report")


def test_cost_at_all_sits_beside_the_macro_auroc(results, report, tmp_path):
    _, markdown, _ = report
    section = markdown.split("### Cost at k = all")[1].split("## Paired")[0]
    header, _, *rows = [line for line in section.splitlines() if line.startswith("|")]
    assert header == "| model | macro AUROC | fit s | predict s | peak MB | parameters |"
    assert [row.split(" | ")[0] for row in rows] == ["| logreg", "| lightgbm"]
    runs = pl.read_csv(results / "runs.csv").filter(pl.col("status") == "ok")
    assert (runs["n_parameters"] > 0).all() and (runs["fit_seconds"] > 0).all()
    # A results folder written before runs recorded their cost has no cost table.
    older = tmp_path / "older"
    shutil.copytree(results, older, ignore=shutil.ignore_patterns("report", "runs"))
    pl.read_csv(older / "runs.csv").drop("fit_seconds", "n_parameters").write_csv(
        older / "runs.csv"
    )
    _, md_path = build_report(older)
    assert "Cost at k = all" not in md_path.read_text(encoding="utf-8")


def _tables_copy(results, tmp_path, **changes):
    """A copy of the results folder's tables (not its run, cohort and feature folders) whose
    manifest has `changes`: a cheap way to give the report a folder the grid could have left."""
    copy = tmp_path / "results"
    shutil.copytree(
        results, copy, ignore=shutil.ignore_patterns("report", "runs", "cohorts", "features")
    )
    dataclasses.replace(Manifest.read(results), **changes).write(copy)
    return copy


def _failed(runs: pl.DataFrame, error: str) -> pl.DataFrame:
    """`runs` recorded as failed with `error`, as the grid records a run that raised."""
    return runs.with_columns(
        pl.lit("failed").alias("status"),
        pl.lit(error).alias("error"),
        *(pl.lit(None).cast(runs[name].dtype).alias(name) for name in COST_COLUMNS),
    )


def _no_rows(folder, *stems):
    """Empty the `stems` tables of a results folder, keeping their columns."""
    for stem in stems:
        path = folder / f"{stem}.parquet"
        pl.read_parquet(path).head(0).write_parquet(path)


def _failure_section(markdown_path) -> str:
    return markdown_path.read_text(encoding="utf-8").split("## Failed runs")[1]


def test_a_cohort_whose_every_run_failed_is_listed_and_not_drawn(results, tmp_path):
    manifest = Manifest.read(results)
    copy = _tables_copy(
        results,
        tmp_path,
        cohorts={**manifest.cohorts, "no_positives": manifest.cohorts[COHORT]},
        cohort_order=(*manifest.cohort_order, "no_positives"),
        runs=RunCounts(
            total=2 * manifest.runs.total,
            ok=manifest.runs.ok,
            failed=manifest.runs.failed + manifest.runs.total,
        ),
    )
    runs = pl.read_csv(copy / "runs.csv", schema_overrides={"k": pl.String})
    lost = _failed(runs, "the train rows hold no positive label").with_columns(
        pl.lit("no_positives").alias("cohort"), pl.col("run_id") + "x"
    )
    pl.concat([runs, lost]).write_csv(copy / "runs.csv")
    _, md_path = build_report(copy)
    failures = _failure_section(md_path)
    assert "| no_positives | logreg |" in failures and "| no_positives | lightgbm |" in failures
    assert "the train rows hold no positive label" in failures
    figures = md_path.parent / "figures"
    assert (figures / f"curve_{COHORT}.png").read_bytes().startswith(PNG_MAGIC)
    assert not (figures / "curve_no_positives.png").exists()
    assert "Nothing to draw" in md_path.read_text(encoding="utf-8").split("### no_positives")[1]


def test_a_grid_whose_every_run_failed_gets_a_report_of_its_failures(results, tmp_path):
    manifest = Manifest.read(results)
    total = manifest.runs.total
    copy = _tables_copy(results, tmp_path, runs=RunCounts(total=total, ok=0, failed=total))
    runs = pl.read_csv(copy / "runs.csv", schema_overrides={"k": pl.String})
    _failed(runs, "every fit failed").write_csv(copy / "runs.csv")
    _no_rows(copy, "results", "paired", "calibration")
    _, md_path = build_report(copy)
    assert "every fit failed" in _failure_section(md_path)
    assert not (md_path.parent / "figures").exists()


def test_a_cohort_without_any_auroc_still_draws_its_auprc(results, tmp_path):
    # The AUROC is undefined when the held-out rows hold one class; the AUPRC may not be.
    copy = _tables_copy(results, tmp_path)
    table = pl.read_parquet(copy / "results.parquet")
    auroc = pl.col("metric") == "auroc"
    table.with_columns(
        pl.when(auroc).then(float("nan")).otherwise(pl.col(name)).alias(name)
        for name in ("value", "ci_low", "ci_high")
    ).write_parquet(copy / "results.parquet")
    _, md_path = build_report(copy)
    assert (md_path.parent / "figures" / f"curve_{COHORT}.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("with_runs", [True, False], ids=["other-cohorts-ran", "no-run-at-all"])
def test_skipped_cohorts_are_named_with_why_and_never_called_finished(results, tmp_path, with_runs):
    skipped = {"broken": "In broken.yaml (line 2): not valid YAML"}
    changes = {} if with_runs else {"cohorts": {}, "cohort_order": (), "runs": RunCounts(0, 0, 0)}
    copy = _tables_copy(results, tmp_path, skipped_cohorts=skipped, **changes)
    if not with_runs:
        _no_rows(copy, "results", "paired", "calibration")
        runs = pl.read_csv(copy / "runs.csv", schema_overrides={"k": pl.String})
        runs.head(0).write_csv(copy / "runs.csv")
    _, md_path = build_report(copy)
    failures = _failure_section(md_path)
    assert "every run of the grid finished" not in md_path.read_text(encoding="utf-8")
    assert "### Skipped cohorts" in failures
    assert "| broken | In broken.yaml (line 2): not valid YAML |" in failures
    assert ("failure kept for the report" in failures) == with_runs
    assert ("the grid had no runs" in failures) != with_runs


def test_existing_figures_are_refused_without_overwrite(results, tmp_path, capsys):
    out = tmp_path / "report"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "macro.png").write_bytes(b"my figure")
    (out / "figures" / "mine.txt").write_text("my notes", encoding="utf-8")
    assert main(["report", str(results), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert str(out / "figures" / "macro.png") in error and "--overwrite" in error
    assert (out / "figures" / "macro.png").read_bytes() == b"my figure"
    assert sorted(p.name for p in out.rglob("*")) == ["figures", "macro.png", "mine.txt"]
    assert main(["report", str(results), "--out", str(out), "--overwrite"]) == 0
    assert (out / "figures" / "macro.png").read_bytes().startswith(PNG_MAGIC)
    assert (out / "figures" / "mine.txt").read_text(encoding="utf-8") == "my notes"


def test_tables_written_again_but_cut_short_are_refused_not_mixed(
    results, tmp_path, monkeypatch, capsys
):
    copy = _tables_copy(results, tmp_path)
    tables = {stem: pl.read_parquet(copy / f"{stem}.parquet") for stem in ("results", "paired")}
    new_results = tables["results"].with_columns(pl.col("value") / 2)
    real = outputs_module.write_parquet_atomic

    def killed_at_paired(frame, target):
        if target.name == "paired.parquet":
            raise KeyboardInterrupt
        real(frame, target)

    monkeypatch.setattr(outputs_module, "write_parquet_atomic", killed_at_paired)
    with pytest.raises(KeyboardInterrupt):
        write_tables(copy, {**tables, "results": new_results}, pl.DataFrame(), Manifest.read(copy))
    assert pl.read_parquet(copy / "results.parquet").equals(new_results)
    assert main(["report", str(copy)]) == 2
    error = capsys.readouterr().err
    assert f"{copy} lacks ['{MANIFEST_FILE}']" in error and "rerun the suite" in error


def test_a_results_folder_written_while_the_report_reads_it_is_refused(
    results, tmp_path, monkeypatch, capsys
):
    copy = _tables_copy(results, tmp_path)
    real = tables_module._read_tables

    def run_finishing_meanwhile(root):
        read = real(root)
        Manifest.read(copy).write(copy)  # a run's new manifest, renamed into place
        return read

    monkeypatch.setattr(tables_module, "_read_tables", run_finishing_meanwhile)
    assert main(["report", str(copy)]) == 2
    assert "was written again while the report read it" in capsys.readouterr().err
    assert not (copy / "report").exists()


@pytest.mark.parametrize(
    ("name", "damage", "expected"),
    [
        ("results.parquet", b"not parquet", "cannot be read"),
        ("paired.parquet", b"", "cannot be read"),
        ("manifest.json", b'{"suite": ', "cannot be read"),
        ("runs.csv", b'a,b\n1,2\n"x', "cannot be read"),
        ("results.parquet", None, "holds no rows"),
        ("manifest.json", None, "is not a manifest this ehrbench can read"),
    ],
    ids=[
        "corrupt-results",
        "empty-file",
        "manifest-not-json",
        "runs-csv",
        "no-rows",
        "manifest-cohorts-a-list",
    ],
)
def test_a_damaged_results_table_is_named(results, tmp_path, capsys, name, damage, expected):
    copy = _tables_copy(results, tmp_path)
    if damage is None and name == "manifest.json":
        manifest = json.loads((copy / name).read_text(encoding="utf-8"))
        (copy / name).write_text(json.dumps({**manifest, "cohorts": []}), encoding="utf-8")
    elif damage is None:
        _no_rows(copy, "results")
    else:
        (copy / name).write_bytes(damage)
    assert main(["report", str(copy)]) == 2
    error = capsys.readouterr().err
    assert str(copy / name) in error and expected in error
    assert not (copy / "report").exists()
