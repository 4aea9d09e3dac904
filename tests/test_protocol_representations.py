"""Frozen representations end to end: `ehrbench train --representation`, and `HEAD@NAME` models
in a suite through the grid, results, paired comparisons and the report."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from protocol_helpers import COHORT, tiny_dataset, tiny_suite

from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.protocol.commands import run_suite
from ehrbench.protocol.suite import load_suite
from ehrbench.report.build import build_report


def write_embeddings(labels: pl.DataFrame, path, informative: bool, seed: int = 0) -> None:
    """8-wide embeddings; with `informative`, the first value is the label plus small noise."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(labels.height, 8))
    if informative:
        values[:, 0] = labels["boolean_value"].to_numpy() + rng.normal(
            scale=0.1, size=labels.height
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    labels.select("subject_id", "prediction_time").with_columns(
        pl.Series("embedding", values.tolist(), dtype=pl.Array(pl.Float32, 8))
    ).write_parquet(path)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A first grid (logreg) for the labels, then the same suite with two representations."""
    folder = tmp_path_factory.mktemp("representations")
    dataset = tiny_dataset(folder / "meds")
    run_suite(tiny_suite(folder, dataset, models=["logreg"], k=["all"], seeds=[0]), [])
    labels = pl.read_parquet(folder / "out" / "cohorts" / COHORT / "labels.parquet")
    write_embeddings(labels, folder / "emb" / f"label_{COHORT}.parquet", informative=True)
    write_embeddings(labels, folder / "emb" / f"noise_{COHORT}.parquet", informative=False)
    path = tiny_suite(
        folder,
        dataset,
        models=["logreg", "logreg@label", "lightgbm@noise"],
        representations={
            "label": "emb/label_{cohort}.parquet",
            "noise": "emb/noise_{cohort}.parquet",
        },
    )
    output = run_suite(path, []).suite.output
    return folder, dataset, path, output


def _auroc(results: pl.DataFrame, model: str, k: str) -> list[float]:
    rows = results.filter(
        (pl.col("model") == model)
        & (pl.col("k") == k)
        & (pl.col("group") == "all")
        & (pl.col("metric") == "auroc")
    )
    return rows["value"].to_list()


def test_heads_run_through_the_grid_results_and_paired_comparisons(grid):
    _, _, _, output = grid
    results = pl.read_parquet(output / "results.parquet")
    assert set(results["model"]) == {"logreg", "logreg@label", "lightgbm@noise"}
    assert len(_auroc(results, "logreg@label", "4")) == 2  # every k and seed of the grid
    assert min(_auroc(results, "logreg@label", "all")) > 0.95
    paired = pl.read_parquet(output / "paired.parquet")
    assert {"logreg@label", "lightgbm@noise"} <= set(paired["model"])
    assert set(paired["baseline"]) == {"logreg"}
    runs = pl.read_csv(output / "runs.csv")
    assert set(runs["status"]) == {"ok"}


def test_heads_appear_in_the_report(grid):
    _, _, _, output = grid
    _, markdown = build_report(output)
    text = markdown.read_text(encoding="utf-8")
    assert "logreg@label" in text and "lightgbm@noise" in text
    assert "logreg@label - logreg" in text  # the paired comparison's column


def test_the_run_key_follows_the_embeddings_file(grid):
    folder, dataset, path, _ = grid
    before = load_suite(path).run_config_hash(COHORT, "logreg@label")
    assert before != load_suite(path).run_config_hash(COHORT, "logreg")
    labels = pl.read_parquet(folder / "out" / "cohorts" / COHORT / "labels.parquet")
    changed = folder / "emb2" / f"label_{COHORT}.parquet"
    write_embeddings(labels, changed, informative=True, seed=1)
    other = tiny_suite(
        folder / "emb2",
        dataset,
        models=["logreg", "logreg@label"],
        representations={"label": str(folder / "emb2" / "label_{cohort}.parquet")},
        grids={"logreg": [{"C": 0.01}, {"C": 0.1}], "lightgbm": [{"num_leaves": 8}]},
    )
    assert load_suite(other).run_config_hash(COHORT, "logreg@label") != before
    assert load_suite(other).run_config_hash(COHORT, "logreg") == load_suite(path).run_config_hash(
        COHORT, "logreg"
    )


def test_grids_and_model_params_default_to_the_heads(grid):
    _, _, path, _ = grid
    suite = load_suite(path, ["grids.logreg@label=[{C: 1.0}]"])
    assert suite.grids["logreg@label"] == [{"C": 1.0}]
    lightgbm = [{"num_leaves": 8, "learning_rate": 0.1, "n_estimators": 50}]  # tiny_suite's
    assert suite.grids["lightgbm@noise"] == lightgbm
    assert suite.grids["logreg"] == [{"C": 0.01}, {"C": 0.1}]


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (["logreg@nope"], "`nope` is not among the suite's `representations` ['label', 'noise']"),
        (["gru@label"], "`gru` reads sequence features, so it cannot be trained on a frozen"),
        (["logreg@"], "`` is not among the suite's `representations`"),
        (["nope@label"], "unknown model `nope`"),
    ],
)
def test_bad_head_models_are_load_time_errors(grid, models, message):
    _, _, path, _ = grid
    with pytest.raises(EhrbenchError) as caught:
        load_suite(path, [f"models=[{','.join(models)}]"])
    assert f"Task suite {path}: `models`" in str(caught.value)
    assert message in str(caught.value)


def test_a_representation_file_missing_for_a_cohort_is_a_load_time_error(grid):
    _, _, path, _ = grid
    with pytest.raises(EhrbenchError, match=r"`representations.label` \(from the command-line"):
        load_suite(path, ["representations.label=absent_{cohort}.parquet"])


def test_train_a_head_on_a_representation(grid, capsys):
    folder, dataset, _, _ = grid
    labels = folder / "out" / "cohorts" / COHORT / "labels.parquet"
    embeddings = folder / "emb" / f"label_{COHORT}.parquet"
    common = ["train", "--data", str(dataset), "--labels", str(labels)]
    out = folder / "train_head"
    code = main(
        [*common, "--model", "logreg", "--representation", str(embeddings), "--out", str(out)]
    )
    assert code == 0
    assert (out / "predictions.parquet").is_file()
    held_out = capsys.readouterr().out.split("held_out AUROC ")[1].split()[0]
    assert float(held_out) > 0.95
    code = main(
        [*common, "--model", "gru", "--representation", str(embeddings), "--out", str(folder / "x")]
    )
    assert code == 2
    assert "`gru` reads sequence features" in capsys.readouterr().err
    code = main(
        [
            *common,
            "--model",
            "logreg",
            "--representation",
            str(folder / "absent.parquet"),
            "--out",
            str(folder / "y"),
        ]
    )
    assert code == 2
    assert "absent.parquet does not exist" in capsys.readouterr().err
