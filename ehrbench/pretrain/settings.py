"""The settings of a pretraining, typed and checked, and how a model folder records them."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ehrbench.arguments import SEED_MAX
from ehrbench.errors import EhrbenchError
from ehrbench.io import reading_saved, write_text_atomic
from ehrbench.meds import MedsDataset
from ehrbench.models.base import above, at_least, typed_settings
from ehrbench.overrides import parse_dotlist

SETTINGS_FILE = "settings.json"
# Settings that only say when to stop, when to checkpoint or where to compute: a resumed
# pretraining may change them.
RESUMABLE_CHANGES = ("max_steps", "checkpoint_every", "device", "num_threads")
# torch computes in float32 (largest 3.4e38), and AdamW's first steps are up to 10 times the
# learning rate: a larger one cannot even be applied. One far below this already diverges,
# which the training loop reports (`ehrbench.pretrain.training`).
MAX_LEARNING_RATE = 1e30
DEVICES = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


@dataclass(frozen=True)
class PretrainSettings:
    """Vocabulary, network size, optimiser and schedule of one pretraining.

    `max_len` is the context length (events per training window and per embedded row);
    `value_bins` the number of per-code quantile bins of numeric values; `predict_values`
    makes the target the next (code, value bin) pair rather than the next code; `max_steps` stops
    early (null: run every epoch); `device` is `auto` (CUDA when available), `cpu`, `cuda` or
    `cuda:N`.

    Every number is range-checked, and must be finite. The upper bounds keep torch from failing
    and lie far beyond a useful pretraining: `seed` up to 2**32 - 1 (as the few-shot seeds),
    `value_bins` up to 100 (percentiles), `max_len` 8192, `hidden` 4096, `n_layers` 64,
    `num_threads` 1024, `dropout` below 1 (1 drops every value) and `learning_rate` up to
    `MAX_LEARNING_RATE`.
    """

    seed: int = at_least(0, 0, maximum=SEED_MAX)
    min_count: int = at_least(5, 1)
    value_bins: int = at_least(5, 1, maximum=100)
    predict_values: bool = True
    max_len: int = at_least(128, 2, maximum=8192)
    hidden: int = at_least(64, 1, maximum=4096)
    n_layers: int = at_least(2, 1, maximum=64)
    n_heads: int = at_least(4, 1)
    dropout: float = at_least(0.1, 0, below=1)
    learning_rate: float = above(1e-3, 0, maximum=MAX_LEARNING_RATE)
    weight_decay: float = at_least(0.01, 0)
    batch_size: int = at_least(32, 1)
    epochs: int = at_least(2, 1)
    max_steps: int | None = at_least(None, 1)
    checkpoint_every: int = at_least(200, 1)
    num_threads: int = at_least(1, 1, maximum=1024)
    device: str = "auto"


def parse_settings(items: list[str]) -> PretrainSettings:
    """The settings that `key=value` `items` describe; raise naming an unknown or mistyped key.

    >>> parse_settings(["hidden=32", "epochs=1"]).hidden
    32
    >>> parse_settings(["hiden=32"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ehrbench.errors.EhrbenchError: pretraining has no setting(s) ['hiden']; ...
    >>> parse_settings(["dropout=1.5"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ehrbench.errors.EhrbenchError: pretraining: setting `dropout` must be at least 0 and below 1...
    """
    tree = parse_dotlist(items, "`hidden=32` or `epochs=1`")
    return settings_from(tree)


def settings_from(values: dict[str, Any]) -> PretrainSettings:
    """`PretrainSettings` from a plain dict (a suite's `pretrained:` entry, a model folder's
    record), checked like the command-line settings."""
    settings = typed_settings(PretrainSettings, values, "pretraining", noun="setting")
    if not DEVICES.fullmatch(settings.device):
        raise EhrbenchError(
            "pretraining: setting `device` must be `auto`, `cpu`, `cuda` or `cuda:N`, not "
            f"{settings.device!r}."
        )
    if settings.hidden % settings.n_heads:
        raise EhrbenchError(
            f"pretraining setting `hidden` ({settings.hidden}) must be a multiple of `n_heads` "
            f"({settings.n_heads})."
        )
    return settings


def dataset_record(dataset: MedsDataset) -> dict[str, str]:
    """What identifies the data a model folder was pretrained on: its folder and fingerprint."""
    return {"root": str(dataset.root.resolve()), "fingerprint": dataset.fingerprint()}


def write_settings(settings: PretrainSettings, dataset: dict[str, str], folder: Path) -> None:
    """Record the settings and the dataset they pretrain on in `folder/settings.json`."""
    record = {"settings": dataclasses.asdict(settings), "dataset": dataset}
    write_text_atomic(json.dumps(record, indent=2, sort_keys=True) + "\n", folder / SETTINGS_FILE)


def read_settings(folder: Path) -> tuple[PretrainSettings, dict[str, str]]:
    """The settings and dataset recorded in `folder`; raise when it holds no pretrained model."""
    path = folder / SETTINGS_FILE
    if not path.is_file():
        raise EhrbenchError(
            f"{path} does not exist: {folder} holds no ehrbench pretrained model (make one with "
            "`ehrbench pretrain --data DIR --out MODEL_DIR`)."
        )
    with reading_saved(path, "a pretrained model's settings"):
        record = json.loads(path.read_text(encoding="utf-8"))
        # A folder written before `predict_values` existed was trained on the next code alone.
        recorded = {"predict_values": False, **record["settings"]}
        return settings_from(recorded), record["dataset"]


def check_same_run(folder: Path, settings: PretrainSettings, dataset: dict[str, str]) -> None:
    """Raise unless `folder`'s recorded run has these settings (up to `RESUMABLE_CHANGES`)
    and this dataset, so a resumed pretraining continues the same one."""
    recorded, recorded_dataset = read_settings(folder)
    old, new = dataclasses.asdict(recorded), dataclasses.asdict(settings)
    changed = sorted(k for k in new if k not in RESUMABLE_CHANGES and old[k] != new[k])
    if changed:
        differences = ", ".join(f"`{k}` {old[k]!r} there, {new[k]!r} now" for k in changed)
        raise EhrbenchError(
            f"{folder} holds a pretraining with other settings ({differences}): a resume must "
            "use the same settings. Pass the recorded ones, or choose a new --out."
        )
    if recorded_dataset != dataset:
        raise EhrbenchError(
            f"{folder} was pretrained on the dataset {recorded_dataset['root']} (fingerprint "
            f"{recorded_dataset['fingerprint']}), not on {dataset['root']} (fingerprint "
            f"{dataset['fingerprint']}): a resume must use the same data. Choose a new --out."
        )
