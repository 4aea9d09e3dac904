"""`ehrbench pretrain` and `ehrbench represent`: train-only, leak-free, deterministic, resumable,
and a representation a head trains on."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
import torch

from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.features import shard_events
from ehrbench.features.representation import read_representation
from ehrbench.meds import open_dataset
from ehrbench.overrides import parse_dotlist
from ehrbench.pretrain import training
from ehrbench.pretrain.represent import load_network, represent
from ehrbench.pretrain.settings import (
    parse_settings,
    read_settings,
    settings_from,
    write_settings,
)
from ehrbench.pretrain.tokens import Vocabulary, gather, read_events, tokenise
from ehrbench.synth.dataset import generate_dataset

TINY = [
    "epochs=1",
    "max_len=16",
    "hidden=16",
    "n_heads=2",
    "n_layers=1",
    "batch_size=16",
    "max_steps=24",
    "checkpoint_every=5",
    "min_count=2",
    "value_bins=3",
]


def _events(root) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(shard) for shard in open_dataset(root).shards])


def _labels(root) -> pl.DataFrame:
    """Two rows per subject: at its 4th timed event (a short history) and at its middle one."""
    timed = _events(root).drop_nulls("time").sort("subject_id", "time")
    per_subject = timed.group_by("subject_id", maintain_order=True).agg(
        early=pl.col("time").get(3),
        middle=pl.col("time").get(pl.len() // 2),
    )
    rows = per_subject.unpivot(index="subject_id", value_name="prediction_time").drop("variable")
    return (
        rows.unique()
        .sort("subject_id", "prediction_time")
        .with_columns(boolean_value=pl.col("subject_id") % 3 == 0)
    )


def _rewrite(root, change) -> None:
    """Replace every shard of the dataset at `root` by `change(shard frame)`, MEDS-sorted."""
    for shard in open_dataset(root).shards:
        frame = pl.read_parquet(shard)
        changed = change(frame).sort("subject_id", "time", nulls_last=False, maintain_order=True)
        changed.select(pl.col(c).cast(frame.schema[c]) for c in frame.columns).write_parquet(shard)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 100-subject synthetic dataset, its label table, and a tiny model pretrained on it."""
    folder = tmp_path_factory.mktemp("pretrain")
    root = generate_dataset(folder / "meds", n_subjects=100, seed=0).root
    labels = _labels(root)
    labels.write_parquet(folder / "labels.parquet")
    assert main(["pretrain", "--data", str(root), "--out", str(folder / "model"), *TINY]) == 0
    return folder, root, labels


def test_the_model_folder_holds_weights_vocabulary_settings_and_curve(data):
    folder, _, _ = data
    files = {p.name for p in (folder / "model").iterdir()}
    assert {"weights.pt", "vocabulary.json", "settings.json", "curve.csv"} <= files
    curve = pl.read_csv(folder / "model" / "curve.csv")
    assert curve["step"].to_list() == list(range(1, 25))
    assert curve["loss"].is_finite().all()


def test_the_same_seed_gives_the_same_weights_and_embeddings(data, tmp_path):
    folder, root, labels = data
    assert main(["pretrain", "--data", str(root), "--out", str(tmp_path / "again"), *TINY]) == 0
    model = folder / "model"
    assert (tmp_path / "again" / "weights.pt").read_bytes() == (model / "weights.pt").read_bytes()
    dataset = open_dataset(root)
    first = represent(model, dataset, labels)
    assert first.equals(represent(tmp_path / "again", dataset, labels))
    assert first.select("subject_id", "prediction_time").equals(
        labels.select("subject_id", "prediction_time")
    )


def test_an_interrupted_pretraining_resumes_to_the_uninterrupted_weights(
    data, tmp_path, monkeypatch
):
    folder, root, _ = data
    out = tmp_path / "model"
    stop_at = [0]
    real_step = training._step

    def interrupted(*args):
        stop_at[0] += 1
        if stop_at[0] == 13:  # after the checkpoint at step 10, before the one at 15
            raise KeyboardInterrupt
        return real_step(*args)

    with monkeypatch.context() as patched:
        patched.setattr(training, "_step", interrupted)
        assert main(["pretrain", "--data", str(root), "--out", str(out), *TINY]) == 130
    assert not (out / "weights.pt").exists()
    assert len(pl.read_csv(out / "curve.csv")) == 10
    assert main(["pretrain", "--data", str(root), "--out", str(out), *TINY]) == 0
    assert (out / "weights.pt").read_bytes() == (folder / "model" / "weights.pt").read_bytes()


def test_a_stop_at_max_steps_resumes_to_the_longer_run(data, tmp_path):
    _, root, _ = data
    short, full = (tmp_path / "short", tmp_path / "full")
    longer = [*TINY, "max_steps=30"]
    assert main(["pretrain", "--data", str(root), "--out", str(short), *TINY]) == 0
    assert main(["pretrain", "--data", str(root), "--out", str(short), *longer]) == 0
    assert main(["pretrain", "--data", str(root), "--out", str(full), *longer]) == 0
    assert (short / "weights.pt").read_bytes() == (full / "weights.pt").read_bytes()


@pytest.mark.parametrize("predict_values", [True, False])
def test_the_target_is_the_next_code_with_its_value_bin(predict_values):
    """With `predict_values` the loss scores the next token's value bin too: a network trained
    on codes alone learns a fixed measurement schedule, not the values that tell subjects
    apart (docs/results/pretrained_fewshot.md)."""
    settings = parse_settings([*TINY, f"predict_values={str(predict_values).lower()}"])
    vocabulary = Vocabulary(("A", "B"), {"B": [0.0, 1.0]}, settings.value_bins)
    net = training.build_network(settings, vocabulary).eval()
    batch = {
        "code": torch.tensor([[2, 3, 4, 4]]),
        "value_bin": torch.tensor([[0, 0, 1, 1]]),
        "hours": torch.zeros(1, 4),
        "age": torch.zeros(1, 4),
    }
    other_bin = {**batch, "value_bin": torch.tensor([[0, 0, 1, 3]])}  # the last target only
    with torch.no_grad():
        loss = training.next_token_loss(net, batch, settings)
        changed = training.next_token_loss(net, other_bin, settings)
    assert bool(loss != changed) is predict_values


def test_tuning_and_held_out_events_never_reach_the_pretrained_model(data, tmp_path):
    folder, root, _ = data
    changed = tmp_path / "meds"
    shutil.copytree(root, changed)
    splits = pl.read_parquet(root / "metadata" / "subject_splits.parquet")
    others = splits.filter(pl.col("split") != "train")["subject_id"].implode()

    def scramble(frame: pl.DataFrame) -> pl.DataFrame:
        theirs = pl.col("subject_id").is_in(others)
        extra = frame.filter(theirs & pl.col("time").is_not_null()).with_columns(
            code=pl.lit("NEW//CODE"), time=pl.col("time") + pl.duration(hours=1)
        )
        scrambled = frame.with_columns(
            code=pl.when(theirs).then(pl.col("code").reverse()).otherwise(pl.col("code")),
            numeric_value=pl.when(theirs)
            .then(pl.col("numeric_value") * 7 + 1)
            .otherwise(pl.col("numeric_value")),
        )
        return pl.concat([scrambled, extra])

    _rewrite(changed, scramble)
    out = tmp_path / "model"
    assert main(["pretrain", "--data", str(changed), "--out", str(out), *TINY]) == 0
    model = folder / "model"
    assert (out / "vocabulary.json").read_bytes() == (model / "vocabulary.json").read_bytes()
    assert (out / "weights.pt").read_bytes() == (model / "weights.pt").read_bytes()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_events_after_a_rows_prediction_time_never_change_its_embedding(data, tmp_path, seed):
    folder, root, labels = data
    rng = np.random.default_rng(seed)
    subjects = labels["subject_id"].unique().sort()
    chosen = subjects.sample(n=40, seed=seed)
    # A cutoff per chosen subject at its first or its last row's time: only later events change.
    times = (
        labels.filter(pl.col("subject_id").is_in(chosen.implode()))
        .group_by("subject_id")
        .agg(first=pl.col("prediction_time").min(), last=pl.col("prediction_time").max())
        .sort("subject_id")
    )
    at_last = pl.Series(rng.integers(0, 2, times.height).astype(bool))
    cutoffs = times.select(
        "subject_id", cutoff=pl.when(at_last).then(pl.col("last")).otherwise(pl.col("first"))
    )
    changed = tmp_path / "meds"
    shutil.copytree(root, changed)
    shift = int(rng.integers(1, 48))

    def perturb(frame: pl.DataFrame) -> pl.DataFrame:
        joined = frame.join(cutoffs, on="subject_id", how="left", maintain_order="left")
        later = pl.col("time") > pl.col("cutoff")
        extra = joined.filter(later).with_columns(
            code=pl.lit("LAB//NEW"), time=pl.col("time") + pl.duration(hours=shift)
        )
        moved = joined.with_columns(
            code=pl.when(later).then(pl.col("code").shuffle(seed)).otherwise(pl.col("code")),
            numeric_value=pl.when(later)
            .then(pl.col("numeric_value") * -3)
            .otherwise(pl.col("numeric_value")),
        )
        return pl.concat([moved, extra]).drop("cutoff")

    _rewrite(changed, perturb)
    before = represent(folder / "model", open_dataset(root), labels)
    after = represent(folder / "model", open_dataset(changed, deep=False), labels)
    unchanged = labels.join(cutoffs, on="subject_id", how="left", maintain_order="left").select(
        pl.col("cutoff").is_null() | (pl.col("prediction_time") <= pl.col("cutoff"))
    )
    kept = unchanged.to_series().to_numpy()
    assert kept.sum() > labels.height // 2
    left, right = np.stack(before["embedding"].to_numpy()), np.stack(after["embedding"].to_numpy())
    assert np.array_equal(left[kept], right[kept])
    # The perturbation does reach the rows after a cutoff: the test is not vacuous.
    assert not np.array_equal(left[~kept], right[~kept])


def test_an_embedding_is_the_mean_state_over_the_rows_history(data):
    """Not the last state (tuned to the next event only): the mean over the row's window."""
    folder, root, labels = data
    dataset = open_dataset(root)
    row = labels.filter(pl.col("subject_id") == labels["subject_id"][0]).head(1)
    net, vocabulary, max_len, device, _ = load_network(folder / "model")
    until = row.select("subject_id", t=pl.col("prediction_time").cast(pl.Int64))
    streams = tokenise(read_events(dataset, row["subject_id"], until), vocabulary)
    end = streams.code.size  # the row's history: BOS and its events; it reads the last max_len
    arrays = gather(streams, np.array([max(0, end - max_len)]), np.array([end]))
    with torch.no_grad():
        states = net.states(training.as_tensors(arrays, device))[0]
    embedding = np.asarray(represent(folder / "model", dataset, row)["embedding"][0])
    np.testing.assert_allclose(embedding, states.mean(dim=0).numpy(), rtol=1e-5, atol=1e-6)


def test_a_logreg_head_trains_on_the_representation(data, tmp_path, capsys):
    folder, root, labels = data
    reps = tmp_path / "reps.parquet"
    labels_path = str(folder / "labels.parquet")
    command = ["represent", "--model", str(folder / "model"), "--data", str(root)]
    assert main([*command, "--labels", labels_path, "--out", str(reps)]) == 0
    features = read_representation(reps, labels)
    assert features.shape == (labels.height, 16)
    run = tmp_path / "run"
    train = ["train", "--data", str(root), "--labels", labels_path, "--model", "logreg"]
    assert main([*train, "--representation", str(reps), "--out", str(run)]) == 0
    assert (run / "predictions.parquet").exists()


def test_batches_of_subjects_on_dask_workers_give_the_same_embeddings(data, tmp_path, monkeypatch):
    folder, root, labels = data
    whole = represent(folder / "model", open_dataset(root), labels)
    # Batches of a few subjects each, so the rows are embedded by many tasks on two workers.
    monkeypatch.setattr(shard_events, "BATCH_EVENTS", 2_000)
    batches = list(shard_events.rows_by_shard(open_dataset(root), labels, desc="count"))
    assert len(batches) >= 4
    reps = tmp_path / "reps.parquet"
    command = ["represent", "--model", str(folder / "model"), "--data", str(root)]
    command += ["--labels", str(folder / "labels.parquet"), "--out", str(reps)]
    assert main([*command, "--scheduler", "local", "--workers", "2"]) == 0
    assert pl.read_parquet(reps).equals(whole)


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_clear_errors(data, tmp_path, capsys):
    folder, root, labels = data
    labels_path = str(folder / "labels.parquet")
    represent_into = ["--data", str(root), "--labels", labels_path, "--out"]
    missing = _error(
        capsys, ["represent", "--model", str(tmp_path / "none"), *represent_into, "r.parquet"]
    )
    assert "holds no ehrbench pretrained model" in missing
    unfinished = tmp_path / "unfinished"
    shutil.copytree(folder / "model", unfinished, ignore=shutil.ignore_patterns("weights.pt"))
    assert "has not finished" in _error(
        capsys, ["represent", "--model", str(unfinished), *represent_into, "r.parquet"]
    )
    other = _error(
        capsys, ["pretrain", "--data", str(root), "--out", str(folder / "model"), *TINY, "seed=1"]
    )
    assert "other settings (`seed` 0 there, 1 now)" in other
    assert "has no setting(s) ['epoch']" in _error(
        capsys, ["pretrain", "--data", str(root), "--out", str(tmp_path / "m"), "epoch=1"]
    )
    strangers = tmp_path / "strangers.parquet"
    labels.with_columns(subject_id=pl.col("subject_id") + 10**9).write_parquet(strangers)
    unknown = _error(
        capsys,
        [
            "represent",
            "--model",
            str(folder / "model"),
            "--data",
            str(root),
            "--labels",
            str(strangers),
            "--out",
            str(tmp_path / "r.parquet"),
        ],
    )
    assert "are not in the dataset" in unknown


OUT_OF_RANGE = [
    "dropout=1.5",
    "dropout=1",
    "dropout=.nan",
    "learning_rate=1e300",
    "learning_rate=.inf",
    "weight_decay=.inf",
    "seed=-1",
    f"seed={2**64}",
    "value_bins=1000",
    "max_len=100000",
    "hidden=100000",
    "n_layers=1000",
    "num_threads=100000000000",
    "device=gpu",
]


@pytest.mark.parametrize("setting", OUT_OF_RANGE)
def test_an_out_of_range_setting_is_refused_before_anything_is_written(
    data, tmp_path, capsys, setting
):
    _, root, _ = data
    out = tmp_path / "model"
    argv = ["pretrain", "--data", str(root), "--out", str(out), *TINY, setting]
    message = _error(capsys, argv)
    name = setting.partition("=")[0]
    assert f"pretraining: setting `{name}` must be" in message
    assert not out.exists()


@pytest.mark.parametrize("setting", OUT_OF_RANGE)
def test_a_suites_pretrained_settings_are_checked_alike(setting):
    """A suite's `pretrained:` entry (YAML values, as here) is read by `settings_from`."""
    name = setting.partition("=")[0]
    with pytest.raises(EhrbenchError, match=f"setting `{name}` must be"):
        settings_from(parse_dotlist([setting], "`hidden=32`"))


def test_a_missing_device_is_refused_before_anything_is_written(data, tmp_path, capsys):
    _, root, _ = data
    out = tmp_path / "model"
    missing = f"device=cuda:{torch.cuda.device_count()}"
    message = _error(capsys, ["pretrain", "--data", str(root), "--out", str(out), *TINY, missing])
    assert "CUDA device(s)" in message
    assert not out.exists()


def test_a_diverged_pretraining_is_an_error_and_leaves_nothing_behind(data, tmp_path, capsys):
    folder, root, _ = data
    out = tmp_path / "model"
    argv = ["pretrain", "--data", str(root), "--out", str(out), *TINY]
    message = _error(capsys, [*argv, "learning_rate=1e30"])
    assert "pretraining diverged: the loss of step 2 is nan" in message
    assert f"Its files in {out} were removed" in message
    assert not out.exists()
    # The same --out takes a rerun with a lower learning rate.
    assert main(argv) == 0
    assert (out / "weights.pt").read_bytes() == (folder / "model" / "weights.pt").read_bytes()


def test_a_resumed_pretraining_that_diverges_keeps_what_it_had(data, tmp_path, capsys, monkeypatch):
    _, root, _ = data
    out = tmp_path / "model"
    argv = ["pretrain", "--data", str(root), "--out", str(out), *TINY]
    assert main([*argv, "max_steps=10"]) == 0
    weights = (out / "weights.pt").read_bytes()
    calls = [0]
    real_step = training._step

    def diverging(*args):
        calls[0] += 1
        return float("nan") if calls[0] == 3 else real_step(*args)  # step 13

    monkeypatch.setattr(training, "_step", diverging)
    message = _error(capsys, argv)
    assert "the loss of step 13 is nan" in message
    assert f"{out} keeps its last checkpoint, from before step 13" in message
    assert (out / "weights.pt").read_bytes() == weights
    assert len(pl.read_csv(out / "curve.csv")) == 10


def test_embeddings_holding_nan_are_refused_naming_the_model(data, tmp_path, capsys):
    folder, root, _ = data
    model = tmp_path / "model"
    shutil.copytree(folder / "model", model)
    weights = torch.load(model / "weights.pt", weights_only=True)
    weights["norm.bias"][0] = float("nan")
    torch.save(weights, model / "weights.pt")
    reps = tmp_path / "reps.parquet"
    argv = ["represent", "--model", str(model), "--data", str(root)]
    argv += ["--labels", str(folder / "labels.parquet"), "--out", str(reps)]
    message = _error(capsys, argv)
    assert f"the pretrained model in {model} gives NaN or infinite embeddings" in message
    assert not reps.exists()


@pytest.mark.parametrize("damaged", ["weights.pt", "settings.json", "vocabulary.json"])
def test_a_damaged_model_folder_is_a_clear_error(data, tmp_path, capsys, damaged):
    folder, root, _ = data
    model = tmp_path / "model"
    shutil.copytree(folder / "model", model)
    (model / damaged).write_text("{ damaged")
    argv = ["represent", "--model", str(model), "--data", str(root)]
    argv += ["--labels", str(folder / "labels.parquet"), "--out", str(tmp_path / "r.parquet")]
    assert f"{model / damaged} is not a pretrained model's" in _error(capsys, argv)


def test_a_model_folder_from_before_value_targets_reads_as_next_code_only(tmp_path):
    write_settings(parse_settings(["hidden=32"]), {"root": "/d", "fingerprint": "f"}, tmp_path)
    assert read_settings(tmp_path)[0].predict_values
    path = tmp_path / "settings.json"
    record = json.loads(path.read_text())
    del record["settings"]["predict_values"]  # as written before the setting existed
    path.write_text(json.dumps(record))
    settings, _ = read_settings(tmp_path)
    assert not settings.predict_values and settings.hidden == 32
