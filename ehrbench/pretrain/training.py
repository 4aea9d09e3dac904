"""The training loop: next-token cross-entropy over train-split subjects' windows, resumable.

Each subject's token stream is cut into windows of `max_len + 1` tokens overlapping by one (the
inputs are a window's first `max_len` tokens, the targets its last `max_len`). An epoch visits
every window once, in an order drawn from a generator seeded by (seed, epoch), so the batches
of any step can be recomputed. Every `checkpoint_every` steps, and when training stops, the
network, optimiser, step, loss curve and RNG state are written to `checkpoint.pt`; a rerun
loads them and continues, and ends with the weights an uninterrupted run ends with.

A step whose loss is NaN or infinite stops the pretraining with an error and writes nothing of
it. A pretraining without a checkpoint from an earlier run is removed (its settings and
vocabulary too), so a rerun with a lower learning rate may use the same folder; a resumed one
keeps its last checkpoint (resuming it would only diverge again) and gets no weights.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn

from ehrbench.errors import EhrbenchError
from ehrbench.io import atomic_path, reading_saved
from ehrbench.logs import progress
from ehrbench.meds import MedsDataset
from ehrbench.models.sequence import reproducible, resolve_device
from ehrbench.pretrain.network import NextCodeTransformer
from ehrbench.pretrain.settings import (
    SETTINGS_FILE,
    PretrainSettings,
    dataset_record,
    write_settings,
)
from ehrbench.pretrain.tokens import (
    PAD,
    VOCABULARY_FILE,
    TokenStreams,
    Vocabulary,
    build_vocabulary,
    gather,
    n_target_classes,
    read_events,
    target_classes,
    tokenise,
)

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
WEIGHTS_FILE = "weights.pt"
CURVE_FILE = "curve.csv"


@dataclass(frozen=True)
class PretrainResult:
    """Where a pretraining stopped: its step, of how many, and the last step's loss."""

    step: int
    total_steps: int
    last_loss: float | None


def build_network(settings: PretrainSettings, vocabulary: Vocabulary) -> NextCodeTransformer:
    """The untrained network for these settings and vocabulary."""
    return NextCodeTransformer(
        vocabulary.size,
        vocabulary.value_bins,
        settings.max_len,
        settings.hidden,
        settings.n_layers,
        settings.n_heads,
        float(settings.dropout),
        n_target_classes(vocabulary, settings.predict_values),
    )


def as_tensors(arrays: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """Gathered token arrays as network inputs on `device`."""
    return {
        "code": torch.from_numpy(arrays["code"].astype(np.int64)).to(device),
        "value_bin": torch.from_numpy(arrays["value_bin"].astype(np.int64)).to(device),
        "hours": torch.from_numpy(arrays["hours"].astype(np.float32)).to(device),
        "age": torch.from_numpy(arrays["age"].astype(np.float32)).to(device),
    }


def training_windows(streams: TokenStreams, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of every window of at most `max_len + 1` tokens with a target in it."""
    starts, ends = [], []
    for first, stop in zip(streams.starts[:-1], streams.starts[1:], strict=True):
        begin = np.arange(first, stop - 1, max_len)
        starts.append(begin)
        ends.append(np.minimum(begin + max_len + 1, stop))
    if not starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(starts), np.concatenate(ends)


class _Schedule:
    """The windows of every step: epoch e's order comes from a generator seeded by (seed, e)."""

    def __init__(self, n_windows: int, settings: PretrainSettings) -> None:
        self.n_windows = n_windows
        self.settings = settings
        self.steps_per_epoch = math.ceil(n_windows / settings.batch_size)
        full = settings.epochs * self.steps_per_epoch
        self.total = full if settings.max_steps is None else min(full, settings.max_steps)
        self._orders: dict[int, torch.Tensor] = {}

    def batch(self, step: int) -> tuple[int, np.ndarray]:
        """(epoch, window indices) of `step`."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch not in self._orders:
            generator = torch.Generator().manual_seed(self.settings.seed * 1_000_003 + epoch)
            self._orders = {epoch: torch.randperm(self.n_windows, generator=generator)}
        size = self.settings.batch_size
        return epoch, self._orders[epoch][position * size : (position + 1) * size].numpy()


def pretrain_dataset(
    dataset: MedsDataset, folder: Path, settings: PretrainSettings
) -> PretrainResult:
    """Pretrain on the train-split subjects of `dataset` into `folder`, resuming what is there.

    Only train-split subjects' events are read: the vocabulary, value bins and weights never
    see a tuning or held_out subject. A fresh `folder` gets the settings and vocabulary first;
    a folder holding them (checked by the caller to match) resumes from its checkpoint.
    """
    resolve_device(settings.device)  # a missing device refused before anything is written
    splits = dataset.subject_splits()
    train = splits.filter(pl.col("split") == "train")["subject_id"].cast(pl.Int64)
    events = read_events(dataset, train)
    if (folder / SETTINGS_FILE).exists():
        vocabulary = Vocabulary.load(folder)
    else:
        vocabulary = build_vocabulary(events, settings.min_count, settings.value_bins)
        vocabulary.save(folder)
        write_settings(settings, dataset_record(dataset), folder)
    return pretrain(tokenise(events, vocabulary), vocabulary, folder, settings)


def pretrain(
    streams: TokenStreams,
    vocabulary: Vocabulary,
    folder: Path,
    settings: PretrainSettings,
) -> PretrainResult:
    """Train (or resume training) the network on `streams`; write checkpoints, weights, curve."""
    starts, ends = training_windows(streams, settings.max_len)
    if not starts.size:
        raise EhrbenchError(
            f"{folder}: no train-split subject has a timed event, so there is no next code to "
            "learn; pretraining needs train-split subjects with event histories."
        )
    schedule = _Schedule(starts.size, settings)
    device = resolve_device(settings.device)
    with reproducible(settings.seed, settings.num_threads, device):
        net = build_network(settings, vocabulary).to(device)
        optimizer = torch.optim.AdamW(
            net.parameters(),
            lr=float(settings.learning_rate),
            weight_decay=float(settings.weight_decay),
        )
        step, curve = _resume(folder, net, optimizer, device)
        resumed_at = step
        if step >= schedule.total:
            logger.info("%s: pretraining already at step %d of %d.", folder, step, schedule.total)
            return PretrainResult(step, schedule.total, curve[-1]["loss"] if curve else None)
        logger.info(
            "pretraining %s parameters on %s windows of %s subjects, from step %d of %d ...",
            f"{sum(p.numel() for p in net.parameters()):,}",
            f"{starts.size:,}",
            f"{streams.subjects.size:,}",
            step,
            schedule.total,
        )
        net.train()
        bar = progress(
            range(step, schedule.total), total=schedule.total - step, desc="pretrain", unit="step"
        )
        for step in bar:
            epoch, windows = schedule.batch(step)
            arrays = gather(streams, starts[windows], ends[windows])
            loss = _step(net, optimizer, as_tensors(arrays, device), settings)
            if not math.isfinite(loss):
                if not resumed_at:  # leave nothing, so that the same --out takes a rerun
                    _remove_pretraining(folder)
                raise EhrbenchError(_diverged(folder, settings, step + 1, loss, resumed_at))
            curve.append({"step": step + 1, "epoch": epoch, "loss": loss})
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            if (step + 1) % settings.checkpoint_every == 0 and step + 1 < schedule.total:
                _checkpoint(folder, net, optimizer, step + 1, curve, device)
        _checkpoint(folder, net, optimizer, schedule.total, curve, device)
        _save(net.state_dict(), folder / WEIGHTS_FILE)
    return PretrainResult(schedule.total, schedule.total, curve[-1]["loss"])


def _diverged(
    folder: Path, settings: PretrainSettings, step: int, loss: float, resumed_at: int
) -> str:
    """The error of a pretraining whose loss became `loss` (NaN or infinite) at `step`, this run
    having started at step `resumed_at` (0: from scratch, and its files are removed)."""
    problem = (
        f"pretraining diverged: the loss of step {step} is {loss} (most likely the learning rate "
        f"{settings.learning_rate} is too high for this network and data); no model was made."
    )
    lower = f"a lower `learning_rate` (the default is {PretrainSettings.learning_rate})"
    if resumed_at:
        return (
            f"{problem} {folder} keeps its last checkpoint, from before step {step}, but resuming "
            f"it would diverge again: pretrain with {lower} into a new --out."
        )
    return (
        f"{problem} Its files in {folder} were removed: rerun with {lower}, into the same --out "
        "if you like."
    )


def _remove_pretraining(folder: Path) -> None:
    """Remove the files a pretraining writes before its weights from `folder`."""
    for name in (SETTINGS_FILE, VOCABULARY_FILE, CHECKPOINT_FILE, CURVE_FILE):
        (folder / name).unlink(missing_ok=True)


def next_token_loss(
    net: NextCodeTransformer, batch: dict[str, torch.Tensor], settings: PretrainSettings
) -> torch.Tensor:
    """The mean cross-entropy of each window's tokens after its first, each predicted from the
    tokens before it: its code, or with `predict_values` its (code, value bin) pair."""
    inputs = {name: value[:, :-1] for name, value in batch.items()}
    targets = target_classes(
        batch["code"][:, 1:],
        batch["value_bin"][:, 1:],
        settings.value_bins,
        settings.predict_values,
    )
    logits = net(inputs)
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD
    )


def _step(
    net: NextCodeTransformer,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    settings: PretrainSettings,
) -> float:
    """One optimiser step on a batch of windows; the batch's `next_token_loss`."""
    optimizer.zero_grad()
    loss = next_token_loss(net, batch, settings)
    loss.backward()
    optimizer.step()
    return float(loss.item())


def _save(state: dict, target: Path) -> None:
    """`torch.save` to `target` atomically, byte-identical for equal states: saved through a
    buffer, as torch names the archive's records after the file it writes to."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(target) as tmp:
        tmp.write_bytes(buffer.getvalue())


def _checkpoint(
    folder: Path,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    curve: list[dict],
    device: torch.device,
) -> None:
    """Write everything a resume needs, then the curve so far."""
    state = {
        "net": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "curve": curve,
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }
    _save(state, folder / CHECKPOINT_FILE)
    frame = pl.DataFrame(curve, schema={"step": pl.Int64, "epoch": pl.Int64, "loss": pl.Float64})
    with atomic_path(folder / CURVE_FILE) as tmp:
        frame.write_csv(tmp)


def _resume(
    folder: Path, net: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device
) -> tuple[int, list[dict]]:
    """Load `folder`'s checkpoint into `net` and `optimizer`; (step, curve), or (0, [])."""
    path = folder / CHECKPOINT_FILE
    if not path.exists():
        return 0, []
    with reading_saved(path, "a pretraining checkpoint"):
        state = torch.load(path, map_location=device, weights_only=True)
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    logger.info("resuming from %s at step %d.", path, state["step"])
    return int(state["step"]), list(state["curve"])
