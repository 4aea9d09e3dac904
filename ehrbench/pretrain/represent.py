"""Frozen embeddings of label rows from a pretrained model, by the MEDS rule.

A row's embedding is the mean of the network's final states over its subject's last `max_len`
tokens at or before the row's `prediction_time` (the BOS token alone for a subject without such
events). The mean, not the last state: the last state is tuned to the one next event, the mean
summarises the window, and few-shot heads read it better (docs/results/pretrained_fewshot.md).
Only events at or before a subject's latest prediction time are read, and the causal mask
keeps a state from depending on later tokens. The rows of a subject
whose histories fit in one window share one forward pass; passes are batched.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
import torch

from ehrbench.errors import EhrbenchError
from ehrbench.features.rows import row_frame
from ehrbench.features.shard_events import rows_by_shard
from ehrbench.io import reading_saved
from ehrbench.meds import MedsDataset
from ehrbench.models.sequence import reproducible, resolve_device
from ehrbench.pretrain.settings import read_settings
from ehrbench.pretrain.tokens import BOS, TokenStreams, Vocabulary, gather, read_events, tokenise
from ehrbench.pretrain.training import WEIGHTS_FILE, as_tensors, build_network
from ehrbench.scheduler import Call, current_executor

logger = logging.getLogger(__name__)

PASSES_PER_BATCH = 64


def load_network(folder: Path) -> tuple[torch.nn.Module, Vocabulary, int, torch.device, int]:
    """The pretrained network of `folder` in eval mode, its vocabulary, context length, device
    and thread count; raise when `folder` holds no finished pretraining."""
    settings, _ = read_settings(folder)
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise EhrbenchError(
            f"{path} does not exist: the pretraining in {folder} has not finished; rerun "
            "`ehrbench pretrain` with the same --data, --out and settings to resume it."
        )
    vocabulary = Vocabulary.load(folder)
    device = resolve_device(settings.device)
    net = build_network(settings, vocabulary)
    with reading_saved(path, "a pretrained model's weights"):
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.to(device).eval(), vocabulary, settings.max_len, device, settings.num_threads


def represent(folder: Path, dataset: MedsDataset, labels: pl.DataFrame) -> pl.DataFrame:
    """One embedding per row of `labels` (label order): subject_id (int64), prediction_time
    (timestamp[us]) and embedding (fixed-size list of float32), as `read_representation` reads.

    The rows are embedded a batch of one shard's subjects at a time, each batch a task of the
    current scheduler (`ehrbench.scheduler`); a row's embedding does not depend on its batch.
    """
    network = load_network(folder)
    rows = row_frame(labels).with_row_index("row")
    executor = current_executor()
    held = executor.hold(network)
    calls = (
        Call(_embed_rows, (held, dataset, shard, shard_rows), shard)
        for shard, shard_rows in rows_by_shard(dataset, rows, desc="represent")
    )
    width = network[0].norm.normalized_shape[0]
    # An empty frame first gives the concatenation its columns when `labels` has no rows.
    parts = [_embedded(rows.clear(), np.zeros((0, width), np.float32))]
    parts += executor.ordered_values(calls)
    frame = pl.concat(parts).sort("row").drop("row")
    _check_finite(frame, folder)
    return frame


def _check_finite(frame: pl.DataFrame, folder: Path) -> None:
    """Refuse embeddings holding NaN or infinite values (`read_representation` refuses them)."""
    bad = ~np.isfinite(frame["embedding"].to_numpy()).all(axis=1)
    if bad.any():
        first = frame.row(int(np.flatnonzero(bad)[0]), named=True)
        raise EhrbenchError(
            f"the pretrained model in {folder} gives NaN or infinite embeddings for "
            f"{int(bad.sum()):,} of {frame.height:,} label rows (the first: subject "
            f"{first['subject_id']} at {first['prediction_time']}), so none were written: its "
            "weights are broken, most likely by a pretraining that diverged. Pretrain again "
            "with a lower `learning_rate` into a new folder."
        )


def _embed_rows(
    network: tuple[torch.nn.Module, Vocabulary, int, torch.device, int],
    dataset: MedsDataset,
    shard: Path,
    rows: pl.DataFrame,
) -> pl.DataFrame:
    """`rows` (subjects of `shard`) with their embedding column."""
    net, vocabulary, max_len, device, threads = network
    times = rows["prediction_time"].cast(pl.Int64).to_numpy()
    until = rows.group_by("subject_id").agg(t=pl.col("prediction_time").cast(pl.Int64).max())
    events = read_events(dataset, until["subject_id"], until, shards=[shard])
    streams = _with_lone_bos(tokenise(events, vocabulary))
    first, end = _histories(streams, rows["subject_id"].to_numpy(), times)
    # A row whose history fits in one window starts at its stream's start (shared with the
    # subject's other such rows); a longer one reads its own last `max_len` tokens.
    start = np.where(end - first <= max_len, first, end - max_len)
    passes = pl.DataFrame({"start": start, "end": end}).with_row_index("row")
    spans = (
        passes.group_by("start")
        .agg(pl.col("end").max())
        .sort(pl.col("end") - pl.col("start"), "start")  # similar lengths batch together
        .with_row_index("pass")
    )
    passes = passes.join(spans.select("pass", "start"), on="start").sort("row")
    embedding = _final_states(
        net,
        streams,
        spans,
        passes["pass"].to_numpy(),
        (passes["end"] - passes["start"]).to_numpy() - 1,
        (device, threads),
    )
    return _embedded(rows, embedding)


def _embedded(rows: pl.DataFrame, embedding: np.ndarray) -> pl.DataFrame:
    return rows.with_columns(
        pl.Series("embedding", embedding, dtype=pl.Array(pl.Float32, embedding.shape[1]))
    )


def _with_lone_bos(streams: TokenStreams) -> TokenStreams:
    """`streams` with one more token at the end, a BOS alone: the history of eventless rows."""
    extra = {
        "code": BOS,
        "value_bin": 0,
        "hours": 0.0,
        "age": 0.0,
        "time": np.iinfo(np.int64).min,
    }
    return TokenStreams(
        subjects=streams.subjects,
        starts=streams.starts,
        **{
            name: np.append(getattr(streams, name), value).astype(getattr(streams, name).dtype)
            for name, value in extra.items()
        },
    )


def _histories(
    streams: TokenStreams, subjects: np.ndarray, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, its stream's first token and one past its last token at or before its time."""
    lone_bos = streams.code.size - 1
    position = np.searchsorted(streams.subjects, subjects)
    found = position < streams.subjects.size
    found[found] = streams.subjects[position[found]] == subjects[found]
    first = np.full(subjects.size, lone_bos)
    end = np.full(subjects.size, lone_bos + 1)
    for row in np.flatnonzero(found):
        first[row], stop = streams.starts[position[row]], streams.starts[position[row] + 1]
        # Tokens after the BOS are time-sorted: count those at or before the row's time.
        after_bos = streams.time[first[row] + 1 : stop]
        end[row] = first[row] + 1 + np.searchsorted(after_bos, times[row], side="right")
    return first, end


@torch.no_grad()
def _final_states(
    net: torch.nn.Module,
    streams: TokenStreams,
    spans: pl.DataFrame,
    row_pass: np.ndarray,
    row_offset: np.ndarray,
    where: tuple[torch.device, int],
) -> np.ndarray:
    """[rows, hidden]: row i's mean state over tokens 0..`row_offset[i]` of pass (span)
    `row_pass[i]`."""
    device, threads = where
    starts, ends = spans["start"].to_numpy(), spans["end"].to_numpy()
    out = np.zeros((row_pass.size, net.norm.normalized_shape[0]), dtype=np.float32)
    by_pass = np.argsort(row_pass, kind="stable")
    batches = range(0, starts.size, PASSES_PER_BATCH)
    # Rows of batch b are by_pass[bounds[b] : bounds[b + 1]].
    bounds = np.searchsorted(row_pass[by_pass], np.append(np.asarray(batches), starts.size))
    with reproducible(0, threads, device):
        for number, begin in enumerate(batches):
            part = slice(begin, begin + PASSES_PER_BATCH)
            arrays = gather(streams, starts[part], ends[part])
            states = net.states(as_tensors(arrays, device)).float()
            # The running mean of the states up to each position: a row reads its own.
            positions = torch.arange(1, states.shape[1] + 1, device=states.device)
            means = (states.cumsum(dim=1) / positions[None, :, None]).cpu().numpy()
            rows = by_pass[bounds[number] : bounds[number + 1]]
            out[rows] = means[row_pass[rows] - begin, row_offset[rows]]
    return out
