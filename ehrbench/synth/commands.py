"""`ehrbench synth`: write the built-in synthetic MEDS dataset."""

from __future__ import annotations

import argparse
import time

from ehrbench.arguments import seed
from ehrbench.synth.dataset import generate_dataset
from ehrbench.synth.sites import DEFAULT_SITE, SITES

EPILOG = """example:
  ehrbench synth --subjects 10000 --seed 0 --out data/synth10k

Writes a MEDS 0.4 folder (data/<split>/<shard>.parquet, metadata/codes.parquet,
metadata/dataset.json, metadata/subject_splits.parquet) into a new or empty folder.
The same --subjects, --seed, --shards and --site always give byte-identical files.
--site B writes a second hospital with a documented shift from the default A (an older case
mix, half the lab draws, temperature charted in Celsius): see ehrbench.synth.sites.
The generative story is in the docstring of ehrbench.synth.generator."""


def register(subparsers) -> None:
    """Add the `synth` verb."""
    parser = subparsers.add_parser(
        "synth",
        help="write the built-in synthetic MEDS dataset",
        description="Generate a synthetic hospital-system MEDS 0.4 dataset.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--subjects", type=int, default=1000, help="number of subjects (1000)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (0)")
    parser.add_argument("--out", required=True, help="new or empty output folder")
    parser.add_argument(
        "--shards", type=int, default=None, help="number of shards (one per 10,000 subjects)"
    )
    parser.add_argument(
        "--site",
        default=DEFAULT_SITE,
        choices=sorted(SITES),
        help="which synthetic hospital (A); B has a documented shift (ehrbench.synth.sites)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Generate the dataset (a progress bar counts the shards on stderr)."""
    started = time.perf_counter()
    summary = generate_dataset(args.out, args.subjects, args.seed, args.shards, args.site)
    print(
        f"wrote {summary.subjects:,} subjects, {summary.rows:,} rows in {summary.files} files "
        f"({summary.shards} shards) to {summary.root} in {time.perf_counter() - started:.1f} s"
    )
    return 0
