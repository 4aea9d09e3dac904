"""External validation in suites: a model trained at synthetic site A is scored at site B (and at
the same site with another seed), with intervals, in the results store and the report."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from protocol_helpers import COHORTS, PREDICATES, tiny_suite

from ehrbench.errors import EhrbenchError
from ehrbench.protocol import runner
from ehrbench.protocol.commands import run_suite
from ehrbench.protocol.external import auroc_drop
from ehrbench.protocol.outputs import write_outputs
from ehrbench.protocol.prepare import prepare_dataset
from ehrbench.protocol.runner import GridRunner
from ehrbench.protocol.store import ResultsStore
from ehrbench.protocol.suite import load_suite
from ehrbench.report.build import build_report
from ehrbench.synth import generate_dataset

EICU = COHORTS / "predicates" / "eicu.yaml"


def _external_runs(output: Path, name: str) -> pl.DataFrame:
    return ResultsStore(output / "external" / name).runs()


@pytest.fixture(scope="module")
def transfer(tmp_path_factory):
    """A 1,500-subject site A suite, scored on site B and on site A with another seed."""
    folder = tmp_path_factory.mktemp("transfer")
    site_a = generate_dataset(folder / "a", 1500, seed=0).root
    path = tiny_suite(
        folder,
        site_a,
        cohorts=["long_los"],
        models=["logreg"],
        k=["all"],
        seeds=[0],
        bootstrap={"resamples": 200, "seed": 0},
        external=[
            {"name": "site_b", "synthetic": {"subjects": 1500, "seed": 1, "site": "B"},
             "predicates": str(PREDICATES)},
            {"name": "same_site", "synthetic": {"subjects": 1500, "seed": 1},
             "predicates": str(PREDICATES)},
        ],
    )  # fmt: skip
    suite = load_suite(path)
    result = GridRunner(suite).run()
    write_outputs(result)
    return suite, result


def _drop(suite, name: str) -> dict:
    runs = _external_runs(suite.output, name)
    assert runs["status"].to_list() == ["ok"]
    return json.loads(runs["info"][0])


def test_transfer_to_another_site_reports_the_drop(transfer):
    suite, result = transfer
    assert result.failed == 0
    info = _drop(suite, "site_b")
    assert info["dataset"] == "site_b"
    drop = info["auroc_drop"]
    assert drop["ci_low"] <= drop["value"] <= drop["ci_high"]
    metrics = ResultsStore(suite.output / "external" / "site_b").load_all()
    auroc = metrics.filter((pl.col("metric") == "auroc") & (pl.col("group") == "all"))
    assert auroc.height == 1 and auroc["ci_low"][0] < auroc["value"][0] < auroc["ci_high"][0]
    # the store records which dataset each score is on
    fingerprint = ResultsStore(suite.output / "external" / "site_b").runs()["dataset_fingerprint"]
    internal = ResultsStore(suite.output).runs()["dataset_fingerprint"]
    assert fingerprint[0] != internal[0]


def test_no_shift_drop_interval_covers_zero(transfer):
    suite, _ = transfer
    drop = _drop(suite, "same_site")["auroc_drop"]
    assert drop["ci_low"] <= 0.0 <= drop["ci_high"]


def test_external_scores_every_row_and_resume(transfer):
    suite, _ = transfer
    store = ResultsStore(suite.output / "external" / "site_b")
    run_id = store.runs()["run_id"][0]
    predictions = pl.read_parquet(store.root / "runs" / run_id / "predictions.parquet")
    labels = pl.read_parquet(
        suite.output / "external" / "site_b" / "cohorts" / "long_los" / "labels.parquet"
    )
    assert predictions.height == labels.height  # the whole external dataset is a test set
    again = GridRunner(suite).run()
    assert again.computed == 0  # everything, external scores included, is already stored


def test_report_has_the_internal_vs_external_table(transfer):
    suite, _ = transfer
    _, markdown = build_report(suite.output)
    text = markdown.read_text(encoding="utf-8")
    section = text[text.index("## External validation") :]
    assert "| dataset | cohort | model | k | seed | internal AUROC | external AUROC |" in section
    assert "| site_b | long_los | logreg | all | 0 |" in section
    assert "| same_site | long_los | logreg | all | 0 |" in section


def test_auroc_drop_of_identical_predictions_is_zero():
    rng = np.random.default_rng(0)
    frame = pl.DataFrame(
        {
            "subject_id": np.arange(200),
            "prediction_time": [None] * 200,
            "boolean_value": rng.random(200) < 0.3,
            "predicted_boolean_probability": rng.random(200),
        }
    )
    from ehrbench.metrics.bootstrap import draw_resamples

    resamples = draw_resamples(frame["subject_id"], 100, 0)
    drop = auroc_drop(frame, resamples, frame, resamples)
    assert drop["value"] == 0.0 and drop["ci_low"] == 0.0 and drop["ci_high"] == 0.0


@pytest.mark.parametrize(
    ("external", "expected"),
    [
        ("site_b", "`external` (from the suite"),
        ([{"synthetic": {"subjects": 100}}], "`external.0.predicates` (from the suite"),
        ([{"predicates": str(PREDICATES)}], "needs `path` (a MEDS folder) or `synthetic`"),
        ([{"path": "/nowhere", "predicates": str(PREDICATES)}], "`external.0.path`"),
        (
            [{"synthetic": {"subjects": 100, "site": "C"}, "predicates": str(PREDICATES)}],
            "`external.0.synthetic.site` (from the suite",
        ),
        (
            [{"synthetic": {"subjects": 100, "sites": "B"}, "predicates": str(PREDICATES)}],
            "`external.0.synthetic` (from the suite",
        ),
        ([{"path": 5, "predicates": str(PREDICATES)}], "`external.0.path` (from the suite"),
        (
            [{"synthetic": {"subjects": 100}, "predicate": str(PREDICATES)}],
            "has unknown key(s) ['predicate']",
        ),
        (
            [
                {"name": "x", "synthetic": {"subjects": 100}, "predicates": str(PREDICATES)},
                {"name": "x", "synthetic": {"subjects": 100}, "predicates": str(EICU)},
            ],
            "names the dataset `x` twice",
        ),
    ],
)
def test_malformed_external_is_a_clear_error(tmp_path, external, expected):
    path = tiny_suite(tmp_path, tmp_path, external=external)
    with pytest.raises(EhrbenchError) as error:
        load_suite(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_mimic_to_eicu_through_concepts(tmp_path, mimic_meds, eicu_meds):
    """A MIMIC-IV demo model scores eICU demo rows through the concept maps; the cohort eICU
    cannot express is skipped with its reason."""
    path = tiny_suite(
        tmp_path,
        mimic_meds,
        predicates=str(COHORTS / "predicates" / "mimic_iv.yaml"),
        cohorts=["lab_hyponatremia", "readmission_30d"],
        models=["logreg"],
        k=["all"],
        seeds=[0],
        features={"tabular": {"windows": ["full"], "min_count": 5, "vocabulary": "concepts"}},
        external=[{"name": "eicu", "path": str(eicu_meds), "predicates": str(EICU)}],
    )
    suite = load_suite(path)
    write_outputs(GridRunner(suite).run())
    runs = _external_runs(suite.output, "eicu")
    assert runs["cohort"].to_list() == ["lab_hyponatremia"]
    assert runs["status"].to_list() == ["ok"]
    skipped = json.loads((suite.output / "external" / "eicu" / "skipped.json").read_text())
    assert skipped["readmission_30d"].startswith("not expressible on eicu: eICU has no dates")
    _, markdown = build_report(suite.output)
    assert "eicu / readmission_30d: not expressible" in markdown.read_text(encoding="utf-8")


def test_output_inside_an_external_dataset_is_refused(tmp_path):
    internal = generate_dataset(tmp_path / "a", 20, seed=0).root
    external = generate_dataset(tmp_path / "b", 20, seed=1).root
    path = tiny_suite(
        tmp_path,
        internal,
        output=str(external / "data" / "results"),
        external=[{"name": "b", "path": str(external), "predicates": str(PREDICATES)}],
    )
    with pytest.raises(EhrbenchError, match="data folder of external dataset `b`"):
        run_suite(path, [])


def test_a_failed_run_is_not_rerun_for_its_external_scores(tmp_path, monkeypatch):
    internal = generate_dataset(tmp_path / "a", 300, seed=0).root
    path = tiny_suite(
        tmp_path,
        internal,
        cohorts=["long_los"],
        models=["logreg"],
        k=["all"],
        seeds=[0],
        external=[
            {"name": "b", "synthetic": {"subjects": 300, "seed": 1}, "predicates": str(PREDICATES)}
        ],
    )
    suite = load_suite(path)

    def broken(*args, **kwargs):
        raise EhrbenchError("broken on purpose")

    monkeypatch.setattr(runner, "execute_run", broken)
    assert GridRunner(suite).run().failed == 1
    monkeypatch.undo()
    assert GridRunner(suite).run().computed == 0  # failed runs wait for --retry-failed
    assert GridRunner(suite, retry_failed=True).run().computed == 1
    assert _external_runs(suite.output, "b")["status"].to_list() == ["ok"]


def test_a_generated_dataset_of_another_site_is_not_reused(tmp_path):
    root = generate_dataset(tmp_path / "b", 20, seed=0, site="B").root
    suite = load_suite(tiny_suite(tmp_path, root), ["dataset.synthetic.subjects=20"])
    with pytest.raises(EhrbenchError, match=r"was generated with .*'site': 'B'.*'site': 'A'"):
        prepare_dataset(suite)
