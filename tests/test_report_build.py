"""The report: built from a small real run, every section present, images embedded."""

from __future__ import annotations

import base64
import json
import re
import shutil

import polars as pl
import pytest
from protocol_helpers import COHORT, tiny_dataset, tiny_suite

import ehrbench.protocol.runner as runner_module
from ehrbench import __version__
from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.protocol.manifest import MANIFEST_FILE, Manifest
from ehrbench.protocol.outputs import write_outputs
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
