"""Benchmark: writing the feature matrix's `.npz`, deflate level 6 (before) against 1 (now).

`ehrbench.features.storage.write_npz` deflated every member at zlib's default level 6, which was
about a quarter of tabular featurisation time; it now uses level 1. This script times both on the
same CSR matrix, alternating runs so both see the same load, through the very same function (the
"before" runs set its level back to 6), and checks what matters to a reader: the arrays read back
from both files are identical, and writing twice gives the same bytes. Results:
benchmarks/results/storage.{json,md}.

The matrix is the `features.npz` that `bench_features.py` wrote for the same --generator,
--subjects and --shards (run that first).

Usage: .venv/bin/python benchmarks/bench_storage.py --subjects 100000 --shards 10 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from common import GENERATORS, RESULTS, WORK, features_work, machine_load

from ehrbench.features import storage
from ehrbench.io import write_text_atomic

BEFORE_LEVEL = 6


def timed_save(matrix: sp.csr_matrix, path: Path, level: int) -> float:
    """Seconds to save `matrix` at `path` with `write_npz` deflating at `level`."""
    kept = storage._DEFLATE_LEVEL
    storage._DEFLATE_LEVEL = level
    try:
        started = time.perf_counter()
        storage.save_csr(path, matrix)
        return time.perf_counter() - started
    finally:
        storage._DEFLATE_LEVEL = kept


def same_arrays(a: Path, b: Path) -> bool:
    """True when the two `.npz` files hold the same members with identical arrays."""
    with np.load(a) as first, np.load(b) as second:
        return sorted(first.files) == sorted(second.files) and all(
            first[name].dtype == second[name].dtype and np.array_equal(first[name], second[name])
            for name in first.files
        )


def measure(matrix: sp.csr_matrix, repeats: int, folder: Path) -> dict:
    """Alternate before/after saves; sizes, read-back identity and byte-reproducibility."""
    before, after = folder / "before.npz", folder / "after.npz"
    seconds = {"before": [], "after": []}
    for _ in range(repeats):
        seconds["before"].append(timed_save(matrix, before, BEFORE_LEVEL))
        seconds["after"].append(timed_save(matrix, after, storage._DEFLATE_LEVEL))
    first = after.read_bytes()
    storage.save_csr(after, matrix)
    return {
        "before_seconds": round(statistics.median(seconds["before"]), 2),
        "after_seconds": round(statistics.median(seconds["after"]), 2),
        "before_mib": round(before.stat().st_size / 2**20, 1),
        "after_mib": round(after.stat().st_size / 2**20, 1),
        "arrays_identical": same_arrays(before, after),
        "rewrite_byte_identical": after.read_bytes() == first,
    }


def render(run: dict) -> str:
    """The Markdown table of one run."""
    return "\n".join(
        [
            "# Feature matrix storage: deflate level 6 (before) vs 1 (now)",
            "",
            "Written by `benchmarks/bench_storage.py`: `ehrbench.features.storage.save_csr` on "
            "the matrix `bench_features.py` made, alternating runs; times are medians.",
            "",
            f"Matrix: {run['generator']}, {run['subjects']:,} subjects, {run['shards']} shards: "
            f"{run['shape'][0]:,} x {run['shape'][1]:,}, {run['nnz']:,} stored values "
            f"({run['raw_mib']:,} MiB uncompressed). {run['repeats']} repeat(s). Load average "
            f"(1, 5, 15 min, as `uptime` prints it): {run['load_before']} before, "
            f"{run['load_after']} after.",
            "",
            "| level | seconds | file MiB |",
            "|---|---:|---:|",
            f"| 6 (before) | {run['before_seconds']} | {run['before_mib']} |",
            f"| 1 (now) | {run['after_seconds']} | {run['after_mib']} |",
            "",
            f"Speed-up {run['before_seconds'] / run['after_seconds']:.1f}x; file size "
            f"{run['after_mib'] / run['before_mib']:.2f}x. Arrays read back identical: "
            f"{run['arrays_identical']}; writing twice gives the same bytes: "
            f"{run['rewrite_byte_identical']}.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=sorted(GENERATORS), default="synth")
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    source = features_work(args.generator, args.subjects, args.shards) / "ehrbench_out"
    if not (source / "features.npz").exists():
        print(f"no {source / 'features.npz'}: run bench_features.py with the same options first")
        return 2
    matrix = sp.load_npz(source / "features.npz").tocsr()
    load_before = machine_load()
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        outcome = measure(matrix, args.repeats, Path(tmp))
    run = {
        "generator": args.generator,
        "subjects": args.subjects,
        "shards": args.shards,
        "shape": list(matrix.shape),
        "nnz": int(matrix.nnz),
        "raw_mib": round(sum(a.nbytes for a in (matrix.data, matrix.indices)) / 2**20),
        "repeats": args.repeats,
        "load_before": load_before,
        "load_after": machine_load(),
    } | outcome
    write_text_atomic(json.dumps(run, indent=2) + "\n", RESULTS / "storage.json")
    write_text_atomic(render(run), RESULTS / "storage.md")
    print(render(run))
    return 0 if outcome["arrays_identical"] and outcome["rewrite_byte_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
