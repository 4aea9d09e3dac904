"""Command-line verbs: `ehrbench featurize tabular` and `ehrbench featurize sequence`."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

from ehrbench.arguments import whole_number
from ehrbench.cohort.artifact import read_label_file
from ehrbench.features.cache import cached_files, copy_entry
from ehrbench.features.config import DEFAULT_VOCABULARY, VOCABULARIES
from ehrbench.features.kinds import FeatureKind, feature_kind
from ehrbench.features.rows import normalise_splits
from ehrbench.meds import open_dataset
from ehrbench.output_paths import (
    check_not_inputs,
    check_writable,
    dataset_inputs,
    refuse_existing,
)
from ehrbench.scheduler import add_scheduler_options, scheduler_from_args, use_scheduler

logger = logging.getLogger(__name__)

_TABULAR_EXAMPLE = (
    "ehrbench featurize tabular --data mimic_meds --labels labels/mortality.parquet "
    "--out features/mortality --windows 1d,7d,30d,365d,full --min-count 10 --fit-on train"
)
_SEQUENCE_EXAMPLE = (
    "ehrbench featurize sequence --data mimic_meds --labels labels/mortality.parquet "
    "--out sequences/mortality --max-events 512 --fit-on train"
)


def _window_names(text: str) -> tuple[str, ...]:
    """`1d,7d,full` -> ("1d", "7d", "full"); each name is checked by the tabular config."""
    return tuple(w for w in text.split(",") if w.strip())


def _featurize(args: argparse.Namespace) -> int:
    """`featurize KIND`: build (or take from the cache) the features and copy them to OUT."""
    kind = feature_kind(args.kind)
    scheduler = scheduler_from_args(args)
    out = check_writable(args.out, "--out", folder=True)
    cache_dir = check_writable(args.cache or out / ".cache", "--cache", folder=True)
    check_not_inputs(
        {"--out": out, "--cache": cache_dir},
        {**dataset_inputs(args.data), "the label file": Path(args.labels)},
    )
    if not args.overwrite:
        refuse_existing(
            [out / name for name in kind.outputs], "choose another --out or pass --overwrite"
        )
    config = kind.config(_settings(kind, args))
    if "held_out" in normalise_splits(args.fit_on):
        logger.warning(
            "--fit-on %s fits the vocabulary and statistics on held_out rows too: features "
            "that test on held_out then depend on it; a benchmark fits on train only.",
            args.fit_on,
        )
    dataset = open_dataset(args.data, deep=False)
    labels = read_label_file(args.labels, dataset)
    started = time.perf_counter()
    with use_scheduler(scheduler):
        entry, (rows, columns), hit = cached_files(
            kind, dataset, labels, config, args.fit_on, cache_dir
        )
    # Copy the cached files rather than serialise (and compress) the features a second time.
    copy_entry(entry, kind, out)
    source = "from the cache" if hit else f"in {time.perf_counter() - started:.1f} s"
    print(f"wrote {kind.name} features for {rows:,} rows x {columns:,} to {out} ({source})")
    return 0


def _settings(kind: FeatureKind, args: argparse.Namespace) -> dict:
    """The kind's settings from the options of the same names."""
    return {
        field.name: getattr(args, field.name) for field in dataclasses.fields(kind.config_class)
    }


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="MEDS dataset folder")
    parser.add_argument("--labels", required=True, help="MEDS label table (parquet)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--min-count",
        type=whole_number(1),
        default=10,
        help="keep codes seen at least this often in the fitting rows' history (default 10)",
    )
    parser.add_argument(
        "--max-codes", type=whole_number(1), default=None, help="keep at most the N most frequent"
    )
    parser.add_argument(
        "--fit-on",
        default="train",
        help="split(s) whose label rows fit the vocabulary and statistics, comma-separated "
        "(default train; never held_out for a benchmark)",
    )
    parser.add_argument(
        "--vocabulary",
        choices=VOCABULARIES,
        default=DEFAULT_VOCABULARY,
        help="read the dataset's own codes (default) or the shared concepts of its concept map "
        "(cohorts/concepts/; codes outside the map are dropped)",
    )
    parser.add_argument("--cache", default=None, help="cache folder (default OUT/.cache)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace feature files already in OUT"
    )
    add_scheduler_options(parser)


def register(subparsers) -> None:
    """Add `featurize tabular` and `featurize sequence`."""
    featurize = subparsers.add_parser(
        "featurize",
        help="tabular or sequence features for a label table",
        description="Leak-free features for every row of a MEDS label table: only events at "
        "or before each row's prediction_time count; vocabularies and statistics come from the "
        "fitting split's rows only. Results are cached by (dataset, labels, config, split).",
        epilog=f"examples:\n  {_TABULAR_EXAMPLE}\n  {_SEQUENCE_EXAMPLE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = featurize.add_subparsers(dest="kind", metavar="KIND", required=True)
    tabular = kinds.add_parser(
        "tabular",
        help="windowed counts and value aggregates as a sparse matrix",
        description="Writes OUT/features.npz (scipy CSR, float32, one row per label row), "
        "OUT/rows.parquet (subject_id, prediction_time), OUT/feature_names.parquet and "
        "OUT/vocabulary.json. A window `Xd` covers (prediction_time - X, prediction_time].",
        epilog=f"example:\n  {_TABULAR_EXAMPLE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(tabular)
    tabular.add_argument(
        "--windows",
        type=_window_names,
        default="1d,7d,30d,365d,full",
        help="comma-separated lookback windows (durations such as 12h, 30d, 2w, or full)",
    )
    tabular.set_defaults(handler=_featurize)
    sequence = kinds.add_parser(
        "sequence",
        help="the last N events of each row as padded arrays",
        description="Writes OUT/sequences.npz (codes, values, value_mask, hours_before, lengths, "
        "static, age_years, subject_id, prediction_time_us) and OUT/sequences.json (vocabulary, "
        "static codes). Sequences are left-aligned: most recent event last, padding after.",
        epilog=f"example:\n  {_SEQUENCE_EXAMPLE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(sequence)
    sequence.add_argument(
        "--max-events", type=whole_number(1), default=512, help="events per row (default 512)"
    )
    sequence.set_defaults(handler=_featurize)
