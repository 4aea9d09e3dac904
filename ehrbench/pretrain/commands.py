"""`ehrbench pretrain` and `ehrbench represent`: a self-supervised model and its embeddings.

torch is imported only when one of these verbs runs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ehrbench.cohort.artifact import read_label_file
from ehrbench.io import write_parquet_atomic
from ehrbench.meds import MedsDataset, open_dataset
from ehrbench.output_paths import (
    check_not_inputs,
    check_writable,
    dataset_inputs,
    exclusive_folder,
    refuse_existing,
)
from ehrbench.pretrain.settings import (
    SETTINGS_FILE,
    PretrainSettings,
    check_same_run,
    dataset_record,
    parse_settings,
    read_settings,
)
from ehrbench.scheduler import add_scheduler_options, scheduler_from_args, use_scheduler

logger = logging.getLogger(__name__)

_PRETRAIN_EPILOG = """\
example:
  ehrbench pretrain --data synth_meds --out models/pretrained
  ehrbench pretrain --data synth_meds --out models/small hidden=32 epochs=1 max_len=64

settings (key=value): seed, min_count, value_bins, max_len, hidden, n_layers, n_heads, dropout,
learning_rate, weight_decay, batch_size, epochs, max_steps, checkpoint_every, num_threads, device.
Only train-split subjects' events are read. Rerunning on the same MODEL_DIR with the same
settings resumes from its last checkpoint (max_steps, checkpoint_every, device and num_threads
may change).
MODEL_DIR gets settings.json, vocabulary.json, checkpoint.pt, weights.pt and curve.csv.
"""

_REPRESENT_EPILOG = """\
example:
  ehrbench represent --model models/pretrained --data synth_meds \\
      --labels labels/readmission_30d.parquet --out reps/readmission_30d.parquet
  ehrbench train --data synth_meds --labels labels/readmission_30d.parquet --model logreg \\
      --representation reps/readmission_30d.parquet --out runs/readmission_pretrained

With --scheduler local (or a Dask scheduler address) the rows are embedded a batch of one
shard's subjects per task, with the same embeddings as in this process.
"""


def _check_model_dir(out: Path, settings: PretrainSettings, dataset: MedsDataset) -> None:
    """Refuse an --out that holds files but no pretraining of these settings on this data."""
    held = [p for p in out.iterdir() if p.name != ".lock"] if out.is_dir() else []
    if not held:
        return
    if not (out / SETTINGS_FILE).exists():
        refuse_existing(held, "choose a new --out, or an earlier MODEL_DIR to resume")
    check_same_run(out, settings, dataset_record(dataset))


def _pretrain(args: argparse.Namespace) -> int:
    settings = parse_settings(args.overrides)
    out = check_writable(args.out, "--out", folder=True)
    check_not_inputs({"--out": out}, dataset_inputs(args.data))
    dataset = open_dataset(args.data, deep=False)
    _check_model_dir(out, settings, dataset)
    from ehrbench.pretrain.training import pretrain_dataset

    with exclusive_folder(out, "ehrbench pretrain"):
        result = pretrain_dataset(dataset, out, settings)
    loss = "none" if result.last_loss is None else f"{result.last_loss:.4f}"
    print(f"pretrained to step {result.step} of {result.total_steps}; last loss {loss}")
    print(f"wrote {out}/settings.json, vocabulary.json, checkpoint.pt, weights.pt, curve.csv")
    return 0


def _represent(args: argparse.Namespace) -> int:
    model_dir = Path(args.model)
    scheduler = scheduler_from_args(args)
    read_settings(model_dir)  # a folder without a pretrained model fails before any work
    out = check_writable(args.out, "--out")
    refuse_existing([out], "choose another --out (a representation is never overwritten)")
    check_not_inputs(
        {"--out": out},
        {
            **dataset_inputs(args.data),
            "the label file": Path(args.labels),
            "the model folder": model_dir,
        },
    )
    dataset = open_dataset(args.data, deep=False)
    labels = read_label_file(args.labels, dataset)
    from ehrbench.pretrain.represent import represent

    with use_scheduler(scheduler):
        frame = represent(model_dir, dataset, labels)
    write_parquet_atomic(frame, out)
    print(f"wrote {out}: {frame.height:,} embeddings of size {frame['embedding'].dtype.size}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `pretrain` and `represent` verbs."""
    pretrain = subparsers.add_parser(
        "pretrain",
        help="pretrain a next-code transformer on train-split subjects' events",
        description=(
            "Pretrain a small causal transformer to predict each event's next code, on the\n"
            "event streams of the dataset's train-split subjects only, resumably."
        ),
        epilog=_PRETRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pretrain.add_argument("--data", required=True, metavar="DIR", help="MEDS dataset folder")
    pretrain.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder")
    pretrain.add_argument("overrides", nargs="*", metavar="key=value", help="settings (below)")
    pretrain.set_defaults(handler=_pretrain)
    represent = subparsers.add_parser(
        "represent",
        help="embed each label row with a pretrained model (frozen representation)",
        description=(
            "Write one embedding per label row, from the subject's events at or before the\n"
            "row's prediction_time only, for `ehrbench train --representation`."
        ),
        epilog=_REPRESENT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    represent.add_argument("--model", required=True, metavar="MODEL_DIR", help="pretrained model")
    represent.add_argument("--data", required=True, metavar="DIR", help="MEDS dataset folder")
    represent.add_argument(
        "--labels", required=True, metavar="LABELS.parquet", help="MEDS label table"
    )
    represent.add_argument("--out", required=True, metavar="REPS.parquet", help="new file")
    add_scheduler_options(represent)
    represent.set_defaults(handler=_represent)
