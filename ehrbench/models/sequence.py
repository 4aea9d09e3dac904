"""Sequence models in PyTorch: GRU, LSTM and Transformer encoder over a subject's recent events.

Each event is embedded as code embedding + value projection (where the event has a value) + a
time encoding of log1p(hours before prediction_time). A learned start token is put before the
events so that a row without events still has one position. The encoder's summary (the last
state for the recurrent models, the masked mean for the Transformer) is concatenated with the
static codes and age/100 and mapped to the head's outputs: one logit (binary), one logit per
class (multiclass, softmax) or one value (regression, fitted on the training values standardised
by their mean and standard deviation, which are saved with the model).

Events are re-ordered oldest first from `hours_before`, whatever order the features hold, and
only the most recent `max_len` events of a row are used (a hyperparameter, for speed).
Training: binary cross-entropy (multiclass: cross-entropy; regression: mean squared error),
AdamW, shuffled mini-batches from a seeded generator, early stopping on the tuning loss with
`patience`; the weights of the best tuning epoch are kept.
On CPU a seed gives the same model: RNGs are seeded in a forked RNG state, deterministic
algorithms are requested and the thread count is fixed while fitting.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ehrbench.errors import EhrbenchError
from ehrbench.io import atomic_path
from ehrbench.meds.label_kinds import BINARY, MULTICLASS, REGRESSION
from ehrbench.models.base import Model, above, at_least, register

WEIGHTS_FILE = "weights.pt"
TIME_FREQUENCIES = (0.25, 0.5, 1.0, 2.0, 4.0)
N_TIME_FEATURES = 1 + 2 * len(TIME_FREQUENCIES)
PREDICT_BATCH = 512


def time_encoding(hours: torch.Tensor) -> torch.Tensor:
    """[..., N_TIME_FEATURES] features of log1p(hours): a scaled copy plus sinusoids."""
    t = torch.log1p(hours.clamp(min=0.0))
    freqs = torch.tensor(TIME_FREQUENCIES, dtype=t.dtype, device=t.device)
    angles = t.unsqueeze(-1) * freqs
    return torch.cat([t.unsqueeze(-1) / 10.0, torch.sin(angles), torch.cos(angles)], dim=-1)


class SequenceNet(nn.Module):
    """Event embedding -> GRU / LSTM / Transformer encoder -> pooled -> [static, age] -> head
    (`n_outputs` logits or values)."""

    def __init__(
        self,
        arch: str,
        vocab_size: int,
        n_static: int,
        hidden: int,
        n_layers: int,
        dropout: float,
        n_heads: int,
        n_outputs: int = 1,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.code = nn.Embedding(vocab_size, hidden, padding_idx=0)
        self.value = nn.Linear(1, hidden)
        self.time = nn.Linear(N_TIME_FEATURES, hidden)
        self.start = nn.Parameter(torch.zeros(hidden))
        recurrent_dropout = dropout if n_layers > 1 else 0.0
        if arch == "gru":
            self.encoder = nn.GRU(
                hidden, hidden, n_layers, batch_first=True, dropout=recurrent_dropout
            )
        elif arch == "lstm":
            self.encoder = nn.LSTM(
                hidden, hidden, n_layers, batch_first=True, dropout=recurrent_dropout
            )
        else:
            layer = nn.TransformerEncoderLayer(
                hidden, n_heads, 2 * hidden, dropout, batch_first=True, norm_first=True
            )
            self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden + n_static + 1, n_outputs))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The head's outputs per row of `batch` (keys as made by `_prepare`): [rows] for one
        output, [rows, n_outputs] for several."""
        valid = batch["valid"]
        x = (
            self.code(batch["codes"])
            + batch["value_mask"].unsqueeze(-1) * self.value(batch["values"].unsqueeze(-1))
            + self.time(time_encoding(batch["hours"]))
        ) * valid.unsqueeze(-1)
        start = self.start.expand(x.shape[0], 1, -1)
        x = torch.cat([start, x], dim=1)
        valid = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)
        if self.arch in ("gru", "lstm"):
            lengths = valid.sum(dim=1).cpu()
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            _, state = self.encoder(packed)
            pooled = (state[0] if self.arch == "lstm" else state)[-1]
        else:
            out = self.encoder(x, src_key_padding_mask=~valid.bool())
            weights = valid.unsqueeze(-1)
            pooled = (out * weights).sum(dim=1) / weights.sum(dim=1)
        extra = torch.cat([batch["static"], batch["age"].unsqueeze(-1) / 100.0], dim=1)
        out = self.head(torch.cat([pooled, extra], dim=1))
        return out.squeeze(-1) if out.shape[-1] == 1 else out


def _prepare(features: Any, max_len: int, vocab_size: int) -> dict[str, torch.Tensor]:
    """CPU tensors of the most recent `max_len` events per row, oldest first, padding last."""
    codes = np.asarray(features.codes)
    hours = np.asarray(features.hours_before, dtype=np.float32)
    present = codes != 0
    order = np.argsort(np.where(present, -hours, np.inf), axis=1, kind="stable")
    n_valid = present.sum(axis=1)
    width = max(1, min(max_len, int(n_valid.max(initial=0))))
    start = np.maximum(n_valid - width, 0)
    positions = np.minimum(start[:, None] + np.arange(width)[None, :], codes.shape[1] - 1)
    take = np.take_along_axis(order, positions, axis=1)
    valid = np.arange(width)[None, :] < np.minimum(n_valid, width)[:, None]

    def pick(array: np.ndarray, dtype: Any) -> torch.Tensor:
        picked = np.take_along_axis(np.asarray(array), take, axis=1)
        return torch.from_numpy(np.where(valid, picked, 0).astype(dtype))

    picked_codes = pick(codes, np.int64)
    # Codes outside the fitted vocabulary count as unknown (index 1).
    picked_codes = torch.where(picked_codes >= vocab_size, 1, picked_codes)
    return {
        "codes": picked_codes,
        "values": pick(features.values, np.float32),
        "value_mask": pick(features.value_mask, np.float32),
        "hours": pick(hours, np.float32),
        "valid": torch.from_numpy(valid.astype(np.float32)),
        "static": torch.from_numpy(np.asarray(features.static, dtype=np.float32)),
        "age": torch.from_numpy(np.asarray(features.age_years, dtype=np.float32)),
    }


def _batch(tensors: dict[str, torch.Tensor], index: torch.Tensor, device: torch.device) -> dict:
    """Rows `index` of the prepared tensors, trimmed to the longest row, on `device`."""
    rows = {key: value[index] for key, value in tensors.items()}
    width = max(1, int(rows["valid"].sum(dim=1).max().item()))
    for key in ("codes", "values", "value_mask", "hours", "valid"):
        rows[key] = rows[key][:, :width]
    return {key: value.to(device) for key, value in rows.items()}


def resolve_device(name: str) -> torch.device:
    """CUDA when `name` is `auto` and a GPU is present, else the device named (`cpu`, `cuda:N`);
    a CUDA device this machine lacks is an `EhrbenchError` (torch would fail deep in a fit)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise EhrbenchError(
            f"setting `device` is {name!r}, but this machine has {torch.cuda.device_count()} "
            "CUDA device(s) torch can use; choose `device=cpu` or `device=auto`."
        )
    return device


@contextlib.contextmanager
def reproducible(seed: int, num_threads: int, device: torch.device) -> Iterator[None]:
    """Seeded, deterministic, fixed-thread torch state for one fit; the caller's is restored."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        torch.set_num_threads(num_threads)
        # warn_only: a CUDA kernel without a deterministic version must not stop training.
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.set_num_threads(threads)


@dataclass(frozen=True)
class SequenceParams:
    """Network size, optimiser, early stopping and where to train.

    `pos_weight` is `none` or `balanced` (positives weighted by negatives / positives);
    `device` is `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.
    """

    hidden: int = at_least(64, 1)
    n_layers: int = at_least(1, 1)
    n_heads: int = at_least(4, 1)
    dropout: float = at_least(0.1, 0, below=1)
    learning_rate: float = above(1e-3, 0)
    weight_decay: float = at_least(0.01, 0)
    batch_size: int = at_least(64, 1)
    max_epochs: int = at_least(20, 1)
    patience: int = at_least(3, 1)
    max_len: int = at_least(64, 1)
    pos_weight: str = "none"
    num_threads: int = at_least(1, 1)
    device: str = "auto"


class SequenceModel(Model):
    """Shared fitting, prediction and saving for the PyTorch sequence models."""

    kind = "sequence"
    arch: str
    Hyperparameters = SequenceParams
    label_kinds = (BINARY, MULTICLASS, REGRESSION)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.hyperparameters.pos_weight not in ("none", "balanced"):
            raise EhrbenchError(
                f"model `{self.name}`: pos_weight must be `none` or `balanced`, "
                f"not {self.hyperparameters.pos_weight!r}."
            )
        self.net: SequenceNet | None = None
        self.shape: dict[str, int] = {}
        self.scale: dict[str, float] = {}
        self.tuning_losses: list[float] = []

    @classmethod
    def param_grid(cls) -> list[dict[str, Any]]:
        """Hidden size and learning rate."""
        return [
            {"hidden": hidden, "learning_rate": rate}
            for hidden in (32, 64)
            for rate in (1e-3, 3e-3)
        ]

    def _device(self) -> torch.device:
        return resolve_device(self.hyperparameters.device)

    def _build(self) -> SequenceNet:
        hp = self.hyperparameters
        return SequenceNet(
            self.arch,
            self.shape["vocab_size"],
            self.shape["n_static"],
            hp.hidden,
            hp.n_layers,
            float(hp.dropout),
            hp.n_heads,
            len(self.target.classes) if self.target.kind == MULTICLASS else 1,
        )

    def _fit(
        self, train: Any, y_train: np.ndarray, tuning: Any, y_tuning: np.ndarray, seed: int
    ) -> None:
        """Train on the training rows, early-stopped on the tuning rows' loss."""
        # `vocabulary` includes the <pad> and <unk> entries, so its length is the table size.
        vocab_size = max(len(train.vocabulary), int(np.asarray(train.codes).max(initial=0)) + 1)
        self.shape = {"vocab_size": vocab_size, "n_static": int(np.asarray(train.static).shape[1])}
        device = self._device()
        train_x = _prepare(train, self.hyperparameters.max_len, vocab_size)
        tuning_x = _prepare(tuning, self.hyperparameters.max_len, vocab_size)
        if self.target.kind == REGRESSION:
            # Standardised targets keep the loss scale independent of the label's unit.
            spread = float(np.std(y_train))
            self.scale = {"mean": float(np.mean(y_train)), "std": spread if spread > 0 else 1.0}
        y_fit = self._tensor(y_train)
        y_tune = self._tensor(y_tuning)
        with reproducible(seed, self.hyperparameters.num_threads, device):
            self.net = self._build().to(device)
            self._train(train_x, y_fit, tuning_x, y_tune, seed, device)
        self.net = self.net.cpu().eval()

    def _tensor(self, y: np.ndarray) -> torch.Tensor:
        """Labels as the loss takes them: class indices, standardised values or 0/1 floats."""
        if self.target.kind == MULTICLASS:
            return torch.from_numpy(np.asarray(y, dtype=np.int64))
        if self.target.kind == REGRESSION:
            standard = (np.asarray(y, dtype=np.float64) - self.scale["mean"]) / self.scale["std"]
            return torch.from_numpy(standard.astype(np.float32))
        return torch.from_numpy(np.asarray(y, dtype=np.float32))

    def _loss(self, y: torch.Tensor) -> nn.Module:
        """The training loss of the label kind (`pos_weight` applies to binary labels only)."""
        if self.target.kind == MULTICLASS:
            return nn.CrossEntropyLoss()
        if self.target.kind == REGRESSION:
            return nn.MSELoss()
        if self.hyperparameters.pos_weight == "balanced":
            n_pos = float(y.sum())
            return nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(y) - n_pos) / n_pos))
        return nn.BCEWithLogitsLoss()

    def _train(
        self,
        train_x: dict,
        y_fit: torch.Tensor,
        tuning_x: dict,
        y_tune: torch.Tensor,
        seed: int,
        device: torch.device,
    ) -> None:
        optimizer = torch.optim.AdamW(
            self.net.parameters(),
            lr=float(self.hyperparameters.learning_rate),
            weight_decay=float(self.hyperparameters.weight_decay),
        )
        loss_fn = self._loss(y_fit).to(device)
        generator = torch.Generator().manual_seed(seed)
        best_loss, best_state, stale = math.inf, copy.deepcopy(self.net.state_dict()), 0
        self.tuning_losses = []
        for _ in range(self.hyperparameters.max_epochs):
            self._epoch(train_x, y_fit, optimizer, loss_fn, generator, device)
            tuning_loss = self._tuning_loss(self._logits(tuning_x, device), y_tune)
            self.tuning_losses.append(tuning_loss)
            if tuning_loss < best_loss - 1e-6:
                best_loss, best_state, stale = tuning_loss, copy.deepcopy(self.net.state_dict()), 0
            else:
                stale += 1
                if stale >= self.hyperparameters.patience:
                    break
        self.net.load_state_dict(best_state)

    def _tuning_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> float:
        """The unweighted loss of the label kind on the tuning rows (early stopping)."""
        if self.target.kind == MULTICLASS:
            return nn.functional.cross_entropy(outputs, y).item()
        if self.target.kind == REGRESSION:
            return nn.functional.mse_loss(outputs, y).item()
        return nn.functional.binary_cross_entropy_with_logits(outputs, y).item()

    def _epoch(
        self,
        train_x: dict,
        y_fit: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        loss_fn: nn.Module,
        generator: torch.Generator,
        device: torch.device,
    ) -> None:
        """One pass over the training rows in a seeded random order."""
        self.net.train()
        order = torch.randperm(len(y_fit), generator=generator)
        for index in order.split(self.hyperparameters.batch_size):
            optimizer.zero_grad()
            logits = self.net(_batch(train_x, index, device))
            loss_fn(logits, y_fit[index].to(device)).backward()
            optimizer.step()

    @torch.no_grad()
    def _logits(self, tensors: dict, device: torch.device) -> torch.Tensor:
        """Logits for every prepared row, in batches, in eval mode, on the CPU."""
        self.net.eval()
        n = tensors["age"].shape[0]
        chunks = [
            self.net(_batch(tensors, index, device)).cpu()
            for index in torch.arange(n).split(PREDICT_BATCH)
        ]
        if chunks:
            return torch.cat(chunks)
        return torch.zeros((0, len(self.target.classes)) if self.target.kind == MULTICLASS else 0)

    def predict_proba(self, features: Any) -> np.ndarray:
        """The probability of the positive class (binary) or of each class (multiclass), or the
        predicted value (regression), for each row (computed on the CPU)."""
        n_static = int(np.asarray(features.static).shape[1])
        if n_static != self.shape["n_static"]:
            raise EhrbenchError(
                f"model `{self.name}` was fitted on {self.shape['n_static']} static codes but the "
                f"features have {n_static}: build the features with the same config."
            )
        tensors = _prepare(features, self.hyperparameters.max_len, self.shape["vocab_size"])
        with reproducible(0, self.hyperparameters.num_threads, torch.device("cpu")):
            logits = self._logits(tensors, torch.device("cpu")).double()
        if self.target.kind == MULTICLASS:
            return torch.softmax(logits, dim=-1).numpy()
        if self.target.kind == REGRESSION:
            return (logits * self.scale["std"] + self.scale["mean"]).numpy()
        return torch.sigmoid(logits).numpy()

    def n_parameters(self) -> int:
        """Every weight of the network."""
        return sum(p.numel() for p in self.net.parameters())

    def _save_state(self, directory: Path) -> dict[str, Any]:
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            torch.save(self.net.state_dict(), tmp)
        scale = {"target_scale": self.scale} if self.scale else {}
        return {**self.shape, "tuning_losses": self.tuning_losses, **scale}

    def _load_state(self, directory: Path, extra: dict[str, Any]) -> None:
        self.shape = {"vocab_size": int(extra["vocab_size"]), "n_static": int(extra["n_static"])}
        self.tuning_losses = list(extra.get("tuning_losses", []))
        self.scale = dict(extra.get("target_scale", {}))
        self.net = self._build()
        state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.net.eval()


@register
class GRUModel(SequenceModel):
    """A GRU over the events; the last state summarises the row."""

    name = "gru"
    arch = "gru"


@register
class LSTMModel(SequenceModel):
    """An LSTM over the events; the last hidden state summarises the row."""

    name = "lstm"
    arch = "lstm"


@register
class TransformerModel(SequenceModel):
    """A Transformer encoder (pre-norm, padding-masked) over the events; masked mean pooling."""

    name = "transformer"
    arch = "transformer"
