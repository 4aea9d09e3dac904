"""A suite's `pretrained:` models: pretrained and embedded once, cached, read as representations
by `HEAD@NAME` models through the grid, results and paired comparisons."""

from __future__ import annotations

import logging
import shutil

import polars as pl
import pytest
from protocol_helpers import COHORT, COHORTS, tiny_dataset, tiny_suite

from ehrbench.alignment import KEY
from ehrbench.errors import EhrbenchError
from ehrbench.features.rows import row_frame
from ehrbench.meds import open_dataset
from ehrbench.pretrain.represent import represent
from ehrbench.protocol.commands import run_suite
from ehrbench.protocol.pretrained import PRETRAINED_DIR, ROWS_FILE, embed_cohorts
from ehrbench.protocol.suite import load_suite

TINY = {"epochs": 1, "hidden": 16, "n_heads": 2, "n_layers": 1, "max_len": 32, "min_count": 1}


def _suite(folder, dataset, settings=TINY):
    return tiny_suite(
        folder,
        dataset,
        models=["logreg", "logreg@tiny"],
        k=["all"],
        seeds=[0],
        pretrained={"tiny": settings},
    )


def _cache_times(output) -> dict[str, int]:
    """Modification times of every file in the pretrained cache, by path."""
    files = (output / PRETRAINED_DIR).rglob("*")
    return {str(p): p.stat().st_mtime_ns for p in files if p.is_file()}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrained")
    dataset = tiny_dataset(folder / "meds")
    path = _suite(folder, dataset)
    result = run_suite(path, [])
    return folder, dataset, path, result


def test_pretrained_heads_run_through_the_grid_results_and_paired(grid):
    _, _, _, result = grid
    output = result.suite.output
    results = pl.read_parquet(output / "results.parquet")
    assert set(results["model"]) == {"logreg", "logreg@tiny"}
    paired = pl.read_parquet(output / "paired.parquet")
    assert "logreg@tiny" in set(paired["model"])
    assert set(pl.read_csv(output / "runs.csv")["status"]) == {"ok"}
    (model_dir,) = (output / PRETRAINED_DIR).iterdir()
    assert model_dir.name.startswith("tiny-")
    assert (model_dir / "weights.pt").is_file() and (model_dir / f"{COHORT}.parquet").is_file()


def test_a_rerun_reuses_the_model_and_its_embeddings(grid, caplog):
    _, _, path, result = grid
    before = _cache_times(result.suite.output)
    with caplog.at_level(logging.INFO, logger="ehrbench"):
        again = run_suite(path, [])
    assert _cache_times(result.suite.output) == before
    assert again.computed == 0
    assert "pretrained model tiny: reusing" in caplog.text


def test_changing_a_setting_gives_new_runs(grid):
    _, _, path, result = grid
    other = run_suite(path, [f"pretrained.tiny.seed={1}"])
    assert other.computed == 1  # the logreg@tiny run; logreg's is kept
    assert len(list((result.suite.output / PRETRAINED_DIR).iterdir())) == 2


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        (
            {"representations": {"tiny": "emb_{cohort}.parquet"}},
            "pretrained.tiny",
            "has the name of `representations.tiny`",
        ),
        ({"pretrained": {"tiny": {"hiden": 16}}}, "pretrained.tiny", "no setting(s) ['hiden']"),
        ({"pretrained": {"tiny": {"hidden": 15}}}, "pretrained.tiny", "multiple of `n_heads`"),
        ({"pretrained": ["tiny"]}, "pretrained", "must map names to pretraining settings"),
        ({"models": ["logreg@tiyn"]}, "models", "`pretrained` ['tiny']. Did you mean 'tiny'?"),
    ],
)
def test_bad_pretrained_entries_are_load_time_errors(tmp_path, grid, changes, key, message):
    _, dataset, _, _ = grid
    path = tiny_suite(
        tmp_path,
        dataset,
        **{"models": ["logreg", "logreg@tiny"], "pretrained": {"tiny": TINY}, **changes},
    )
    with pytest.raises(EhrbenchError) as caught:
        load_suite(path)
    assert f"Task suite {path}: `{key}` (from the suite {path})" in str(caught.value)
    assert message in str(caught.value)


def test_the_run_key_follows_the_settings(grid):
    _, _, path, _ = grid
    suite = load_suite(path)
    other = load_suite(path, ["pretrained.tiny.max_steps=3"])
    assert suite.config_hash() != other.config_hash()


def test_a_skipped_cohort_is_not_embedded(grid, tmp_path):
    _, _, path, result = grid
    cohorts = tmp_path / "cohorts"
    cohorts.mkdir()
    shutil.copy(COHORTS / f"{COHORT}.yaml", cohorts)
    (cohorts / "broken.yaml").write_text("trigger: nothing\npredicates: {}\n", encoding="utf-8")
    again = run_suite(path, [f"cohorts_dir={cohorts}", f"cohorts=[broken,{COHORT}]"])
    assert "broken" in again.skipped_cohorts
    assert set(pl.read_csv(result.suite.output / "runs.csv")["status"]) == {"ok"}


def _model_copy(output, tmp_path):
    """A copy of a pretrained model of the grid's cache without its embeddings."""
    source = sorted((output / PRETRAINED_DIR).iterdir())[0]
    copy = tmp_path / PRETRAINED_DIR / "model"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("*.parquet"))
    return copy


def test_cohorts_get_their_rows_of_one_embedding_of_the_distinct_rows(grid, tmp_path, caplog):
    _, dataset, _, result = grid
    output = result.suite.output
    model = _model_copy(output, tmp_path)
    labels = pl.read_parquet(output / "cohorts" / COHORT / "labels.parquet")
    # Two overlapping cohorts, one in reverse order and with a repeated row.
    cohorts = {"first": labels.head(600), "second": pl.concat([labels.tail(500), labels.tail(1)])}
    cohorts["second"] = cohorts["second"].reverse()
    meds = open_dataset(dataset)
    with caplog.at_level(logging.INFO, logger="ehrbench"):
        embed_cohorts(model, meds, cohorts)
    distinct = pl.concat([t.select(list(KEY)) for t in cohorts.values()]).unique().height
    assert f"embedding the {distinct} distinct cohort rows" in caplog.text
    for name, table in cohorts.items():
        alone = represent(model, meds, table)
        mine = pl.read_parquet(model / f"{name}.parquet")
        assert mine.select(list(KEY)).equals(alone.select(list(KEY)))
        # Bit for bit: a pass's states do not depend on the other passes of its batch.
        assert mine.equals(alone)


def test_a_changed_cohort_reembeds_and_unchanged_cohorts_are_reused(grid, tmp_path, caplog):
    _, dataset, _, result = grid
    model = _model_copy(result.suite.output, tmp_path)
    labels = pl.read_parquet(result.suite.output / "cohorts" / COHORT / "labels.parquet")
    meds = open_dataset(dataset)
    embed_cohorts(model, meds, {"first": labels.head(300), "second": labels.tail(300)})
    changed = {"first": labels.head(300), "second": labels.tail(200)}
    distinct = pl.concat([row_frame(t) for t in changed.values()]).unique().sort(list(KEY))
    with caplog.at_level(logging.INFO, logger="ehrbench"):
        embed_cohorts(model, meds, changed)
    assert f"embedding the {distinct.height} distinct cohort rows" in caplog.text
    assert "embeddings of cohort first: reusing" in caplog.text
    assert "embeddings of cohort second: reusing" not in caplog.text
    assert pl.read_parquet(model / ROWS_FILE).select(list(KEY)).equals(distinct)
    for name, table in changed.items():
        assert pl.read_parquet(model / f"{name}.parquet").select(list(KEY)).equals(row_frame(table))
    caplog.clear()
    before = _cache_times(tmp_path)
    with caplog.at_level(logging.INFO, logger="ehrbench"):
        embed_cohorts(model, meds, changed)
    assert "distinct cohort rows: reusing" in caplog.text
    assert _cache_times(tmp_path) == before
