"""Run ACES 0.7.3 (es-aces, installed by `benchmarks/aces_env.sh`) as a black box.

ACES is never imported: `aces-cli` from the side environment `benchmarks/.venv-aces` is run in a
subprocess; on a MEDS folder it goes through the shards one after the other in one process
(hydra multirun over `data.shard`, as ACES documents), and the label files of the shards are
concatenated. The runner can also ask ACES for its window statistics
(`window_stats_dir`), whose `trigger` column tells which output rows ACES leaked with a null
trigger (spec section 9).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from common import peak_rss_kib

ACES_VENV = Path(__file__).resolve().parent / ".venv-aces"
ACES_CLI = ACES_VENV / "bin" / "aces-cli"
LABEL_COLUMNS = ("subject_id", "prediction_time", "boolean_value")


class AcesError(RuntimeError):
    """ACES exited non-zero; the message holds the tail of its output."""


@dataclass(frozen=True)
class AcesRun:
    """What one ACES extraction gave.

    `labels` holds ACES's label rows (all shards, in shard order). `leaked` is a boolean per
    label row: True where ACES's window statistics show a null trigger (its null-row defect).
    `seconds` and `peak_rss_kib` are the wall time and the peak RSS of the ACES process
    (None when not measured).
    """

    labels: pl.DataFrame
    leaked: pl.Series
    seconds: float
    peak_rss_kib: int | None


def aces_available() -> bool:
    """True when the side environment with `aces-cli` exists."""
    return ACES_CLI.exists()


def event_shards(data: Path) -> list[Path]:
    """The event parquet files of `data`: the file itself, or a MEDS folder's `data/**`."""
    if data.is_file():
        return [data]
    shards = sorted((data / "data").rglob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"{data} holds no MEDS event shards under data/")
    return shards


def _shard_names(data: Path) -> list[str]:
    """ACES's names for the shards of a MEDS folder: paths under data/ without `.parquet`."""
    return [p.relative_to(data / "data").with_suffix("").as_posix() for p in event_shards(data)]


def _read_outputs(labels: Path, stats: Path) -> tuple[pl.DataFrame, pl.Series]:
    """One shard's labels and, from its window statistics, which rows ACES leaked."""
    table = pl.read_parquet(labels)
    window_stats = pl.read_parquet(stats)
    if not window_stats["subject_id"].equals(table["subject_id"]):
        raise AcesError(f"ACES window statistics {stats} do not align with its labels {labels}")
    # On an empty result ACES writes statistics with a `subject_id` column only.
    if "trigger" in window_stats.columns:
        trigger = window_stats["trigger"]
    else:
        trigger = pl.Series([], dtype=pl.Datetime)
    return table, trigger.is_null().alias("leaked")


def run_aces(
    cohort: Path,
    data: Path,
    predicates: Path | None = None,
    measure: bool = False,
) -> AcesRun:
    """Run ACES on `data`: one parquet event file, or every shard of a MEDS folder.

    A folder runs as ACES documents for sharded MEDS data: one `aces-cli -m data=sharded`
    process that goes through the shards one after the other. With `measure` the process runs
    under `/usr/bin/time -v` to record its peak RSS. Raises AcesError when ACES fails.
    """
    with tempfile.TemporaryDirectory(prefix="aces-") as tmp:
        work = Path(tmp)
        args = [
            str(ACES_CLI),
            f"config_path={cohort.resolve()}",
            f"cohort_dir={work}",
            "cohort_name=labels",
            "data.standard=meds",
            f"window_stats_dir={work / 'stats'}",
        ]
        if predicates is not None:
            args.append(f"predicates_path={predicates.resolve()}")
        if data.is_file():
            args += [f"data.path={data.resolve()}", f"hydra.run.dir={work / 'logs'}"]
            outputs = [(work / "labels.parquet", work / "stats" / "labels.parquet")]
        else:
            shards = _shard_names(data.resolve())
            # `-m` (multirun) must precede the overrides; `data=sharded` picks the config group.
            args[1:1] = ["-m", "data=sharded"]
            args += [f"data.root={data.resolve() / 'data'}", "data.shard=" + ",".join(shards)]
            args.append(f"hydra.sweep.dir={work / 'logs'}")
            outputs = [
                (work / "labels" / f"{s}.parquet", work / "stats" / "labels" / f"{s}.parquet")
                for s in shards
            ]
        if measure:
            args = ["/usr/bin/time", "-v", *args]
        started = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
            raise AcesError(f"aces-cli failed on {data} (exit {proc.returncode}):\n{tail}")
        parts = [_read_outputs(labels, stats) for labels, stats in outputs]
    return AcesRun(
        labels=pl.concat([p[0] for p in parts], how="vertical_relaxed"),
        leaked=pl.concat([p[1] for p in parts]),
        seconds=seconds,
        peak_rss_kib=peak_rss_kib(proc.stderr) if measure else None,
    )
