"""A second synthetic MEDS generator for the benchmarks, built unlike `ehrbench synth`.

The benchmarks compare ehrbench with ACES and MEDS-Tab; a speed ratio measured on one generator
says as much about that generator's data as about the tools, so each benchmark also runs here.
What differs from `ehrbench synth` (and why it matters to a reader of event files):

- code frequencies: besides the few codes the cohort library looks for, every subject has
  outpatient visits whose codes come from a Zipf-like long tail over 50,000 codes (exponent 1.1),
  so the vocabulary is large and most codes are rare (synth: under 100 codes, all frequent);
- the shape of a subject: a negative-binomial number of hospital stays with log-normal lengths,
  lab draws every 8 hours of a stay, and visits that put several rows at the same time;
- files: row groups of 50,000 rows and snappy compression (synth: one row group of up to a
  million rows, zstd), shards of unequal sizes (shard k holds a share proportional to k + 1),
  a 80/10/10 split and non-contiguous subject ids.

The codes the library's cohorts need (`cohorts/predicates/synthetic.yaml`: hospital admission and
discharge dispositions, MEDS_DEATH, ICU stays, potassium, sodium, glucose, platelets and
hemoglobin in the same units, the ICD-10 diagnoses, MEDS_BIRTH) are spelled as there, so the same
cohort files give non-trivial labels. The output is checked before it is kept: the `meds`
package's schema on every file and `ehrbench.meds.open_dataset` (sort order, one shard per
subject, code coverage). The same (subjects, shards, seed) always give the same files.

Usage: .venv/bin/python benchmarks/second_generator.py --subjects 10000 --shards 3 --out DIR
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import meds
import numpy as np
import polars as pl
import pyarrow.parquet as pq
from meds_validate import meds_check

from ehrbench.meds import (
    open_dataset,
    write_codes,
    write_dataset_metadata,
    write_subject_splits,
)

ROW_GROUP_ROWS = 50_000
TAIL_CODES = 50_000
ZIPF_EXPONENT = 1.1
SPLIT_SHARES = ((meds.train_split, 0.8), (meds.tuning_split, 0.1), (meds.held_out_split, 0.1))
MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
YEAR_US = 365 * DAY_US
EPOCH_1930_US = -40 * YEAR_US  # births from 1930 on, as microseconds since 1970

ADMISSION_TYPES = (("EMERGENCY", 0.6), ("ELECTIVE", 0.25), ("URGENT", 0.1), ("OBSERVATION", 0.05))
LIVE_DISPOSITIONS = (
    ("HOME", 0.5),
    ("HOME HEALTH CARE", 0.2),
    ("SKILLED NURSING FACILITY", 0.15),
    ("REHAB", 0.1),
    ("HOSPICE", 0.03),
    ("AGAINST ADVICE", 0.02),
)
# Lab code, usual (mean, sd), abnormal (mean, sd): the abnormal draw is more likely in a sick
# stay, so the threshold cohorts find both classes.
LABS = (
    ("LAB//50971//mEq/L", (4.2, 0.35), (6.2, 0.9)),
    ("LAB//50983//mEq/L", (140.0, 2.0), (127.0, 5.0)),
    ("LAB//50931//mg/dL", (115.0, 15.0), (58.0, 10.0)),
    ("LAB//51265//K/uL", (260.0, 40.0), (70.0, 35.0)),
    ("LAB//51222//g/dL", (14.0, 0.8), (8.5, 1.5)),
)
# ICD-10 diagnoses the library's cohorts use, with their chance per stay.
DIAGNOSES = (
    ("DIAGNOSIS//ICD//10//I10", 0.3),
    ("DIAGNOSIS//ICD//10//E785", 0.2),
    ("DIAGNOSIS//ICD//10//E119", 0.1),
    ("DIAGNOSIS//ICD//10//I214", 0.04),
)
ICU_IN = "ICU_ADMISSION//Medical Intensive Care Unit (MICU)"
ICU_OUT = "ICU_DISCHARGE//Medical Intensive Care Unit (MICU)"
# Long-tail codes take their kind from their rank; none matches a library predicate.
TAIL_KINDS = ("DIAGNOSIS//ICD//9//{}", "MEDICATION//RX{}", "PROCEDURE//P{}", "LAB//T{}//u")


def vocabulary() -> list[str]:
    """Every code the generator can write: the fixed codes, then the long tail by rank."""
    fixed = ["GENDER//F", "GENDER//M", meds.birth_code, meds.death_code]
    fixed += [f"HOSPITAL_ADMISSION//{name}" for name, _ in ADMISSION_TYPES]
    fixed += [f"HOSPITAL_DISCHARGE//{name}" for name, _ in LIVE_DISPOSITIONS]
    fixed += ["HOSPITAL_DISCHARGE//DIED", ICU_IN, ICU_OUT]
    fixed += [code for code, _, _ in LABS] + [code for code, _ in DIAGNOSES]
    tail = [TAIL_KINDS[rank % len(TAIL_KINDS)].format(rank) for rank in range(TAIL_CODES)]
    return fixed + tail


def shard_sizes(subjects: int, shards: int) -> list[int]:
    """Unequal shards: shard k gets a share proportional to k + 1 (each at least one subject)."""
    weights = np.arange(1, shards + 1, dtype=np.float64)
    bounds = np.round(np.cumsum(weights) / weights.sum() * subjects).astype(np.int64)
    bounds = np.maximum(bounds, np.arange(1, shards + 1))
    return np.diff(np.concatenate([[0], bounds])).tolist()


def _pick(rng: np.random.Generator, options: tuple, size: int) -> np.ndarray:
    """Indices into `options` ((name, probability) pairs), drawn `size` times."""
    p = np.array([share for _, share in options])
    return rng.choice(len(options), size=size, p=p / p.sum())


ROW_SCHEMA = {"subject": pl.Int64, "time": pl.Int64, "code": pl.Int64, "numeric_value": pl.Float32}


def _rows(subject, time, code, value=None) -> pl.DataFrame:
    """Event rows from arrays of subject index, time (us, or None for static) and code index.

    Times are floored to the minute, as hospital systems chart them (rows share times).
    """
    n = len(subject)
    return pl.DataFrame(
        {
            "subject": np.asarray(subject, np.int64),
            "time": np.full(n, None) if time is None else np.asarray(time, np.int64) // MINUTE_US,
            "code": np.asarray(code, np.int64),
            "numeric_value": np.full(n, np.nan, np.float32) if value is None else value,
        },
        schema=ROW_SCHEMA,
    ).with_columns(pl.col("time") * MINUTE_US)


class ShardBuilder:
    """The events of one shard's subjects, as integer code indices into `vocabulary()`."""

    def __init__(self, rng: np.random.Generator, subjects: int, codes: dict[str, int]):
        self.rng, self.n, self.codes = rng, subjects, codes
        self.parts: list[pl.DataFrame] = []
        ranks = np.arange(TAIL_CODES, dtype=np.float64)
        self.tail_cdf = np.cumsum(1.0 / (ranks + 2.0) ** ZIPF_EXPONENT)
        self.tail_cdf /= self.tail_cdf[-1]

    def code(self, name: str) -> int:
        return self.codes[name]

    def add(self, subject, time, name: str, value=None) -> None:
        """Rows of the one code `name` for each subject (index) and time."""
        self.parts.append(_rows(subject, time, np.full(len(subject), self.code(name)), value))

    def build(self) -> pl.DataFrame:
        """All rows of the shard, with subject indices 0..n-1 (not yet sorted)."""
        rng, n = self.rng, self.n
        birth = EPOCH_1930_US + rng.integers(0, 70 * YEAR_US, n)
        first_seen = birth + rng.integers(18 * YEAR_US, 80 * YEAR_US, n)
        female = rng.random(n) < 0.52
        gender = np.where(female, self.code("GENDER//F"), self.code("GENDER//M"))
        self.parts.append(_rows(np.arange(n), None, gender))
        self.add(np.arange(n), birth, meds.birth_code)
        last_time = self.stays(first_seen)
        self.visits(first_seen, last_time)
        return pl.concat(self.parts)

    def stays(self, first_seen: np.ndarray) -> np.ndarray:
        """Hospital stays with labs, ICU and diagnoses; returns each subject's last event time."""
        rng, n = self.rng, self.n
        count = rng.negative_binomial(2, 0.45, n)
        subject = np.repeat(np.arange(n), count)
        stays = len(subject)
        hours = np.exp(rng.normal(np.log(72.0), 0.9, stays)) + 1
        length = (hours * HOUR_US).astype(np.int64)
        readmit = rng.random(stays) < 0.2
        gap_days = np.where(readmit, rng.exponential(12.0, stays), rng.exponential(200.0, stays))
        gap = (gap_days * DAY_US).astype(np.int64) + HOUR_US
        step = pl.DataFrame({"s": subject, "d": gap + length})
        # Each stay starts after the previous stays and gaps of its subject.
        ends = step.select(pl.col("d").cum_sum().over("s"))["d"].to_numpy()
        discharge = first_seen[subject] + ends
        admit = discharge - length
        is_last = np.r_[subject[1:] != subject[:-1], True] if stays else np.zeros(0, bool)
        died = is_last & (rng.random(stays) < 0.12)
        admission_codes = [self.code(f"HOSPITAL_ADMISSION//{t}") for t, _ in ADMISSION_TYPES]
        live_codes = [self.code(f"HOSPITAL_DISCHARGE//{d}") for d, _ in LIVE_DISPOSITIONS]
        admission = np.array(admission_codes)[_pick(rng, ADMISSION_TYPES, stays)]
        disposition = np.array(live_codes)[_pick(rng, LIVE_DISPOSITIONS, stays)]
        disposition[died] = self.code("HOSPITAL_DISCHARGE//DIED")
        self.parts.append(_rows(subject, admit, admission))
        self.parts.append(_rows(subject, discharge, disposition))
        self.add(subject[died], discharge[died], meds.death_code)
        self.icu(subject, admit, length, died)
        self.labs(subject, admit, length)
        self.diagnoses(subject, discharge)
        last = first_seen.copy()
        np.maximum.at(last, subject, discharge)
        alive = np.ones(n, bool)
        alive[subject[died]] = False
        return np.where(alive, last + YEAR_US, last)

    def icu(self, subject, admit, length, died) -> None:
        """A fifth of stays (most fatal ones) pass through the ICU; a death ends it undischarged."""
        rng = self.rng
        icu = rng.random(len(subject)) < np.where(died, 0.6, 0.2)
        start = admit + (length * rng.uniform(0.0, 0.3, len(subject))).astype(np.int64)
        end = start + (length * rng.uniform(0.1, 0.6, len(subject))).astype(np.int64)
        out = icu & ~died
        self.add(subject[icu], start[icu], ICU_IN)
        self.add(subject[out], end[out], ICU_OUT)

    def labs(self, subject, admit, length) -> None:
        """A draw of every library lab every 8 hours of a stay, plus two long-tail labs."""
        rng = self.rng
        draws = 1 + length // (8 * HOUR_US)
        stay = np.repeat(np.arange(len(subject)), draws)
        at = admit[stay] + (length[stay] * rng.random(len(stay))).astype(np.int64)
        sick = (rng.random(len(subject)) < 0.25)[stay]
        for code, usual, abnormal in LABS:
            off = rng.random(len(stay)) < np.where(sick, 0.2, 0.002)
            value = np.where(off, rng.normal(*abnormal, len(stay)), rng.normal(*usual, len(stay)))
            value = np.round(np.maximum(value, 0.1), 1).astype(np.float32)
            self.add(subject[stay], at, code, value)
        for _ in range(2):
            tail = self.tail(len(stay))
            value = np.round(rng.lognormal(2.0, 1.0, len(stay)), 2).astype(np.float32)
            self.parts.append(_rows(subject[stay], at, tail, value))

    def diagnoses(self, subject, discharge) -> None:
        """The library's diagnoses by chance, and one to four long-tail codes, at discharge."""
        rng = self.rng
        for code, chance in DIAGNOSES:
            hit = rng.random(len(subject)) < chance
            self.add(subject[hit], discharge[hit], code)
        extra = rng.integers(1, 5, len(subject))
        stay = np.repeat(np.arange(len(subject)), extra)
        self.parts.append(_rows(subject[stay], discharge[stay], self.tail(len(stay))))

    def visits(self, first_seen: np.ndarray, last_time: np.ndarray) -> None:
        """Outpatient visits between first and last contact: several long-tail codes at once."""
        rng, n = self.rng, self.n
        visits = rng.poisson(np.exp(rng.normal(np.log(25.0), 0.8, n)))
        subject = np.repeat(np.arange(n), visits)
        span = np.maximum(last_time - first_seen, HOUR_US)[subject]
        at = first_seen[subject] + (span * rng.random(len(subject))).astype(np.int64)
        size = 1 + rng.poisson(7.0, len(subject))
        row = np.repeat(np.arange(len(subject)), size)
        code = self.tail(len(row))
        # Only the long-tail lab codes carry a value.
        is_lab = (code - len(self.codes) + TAIL_CODES) % len(TAIL_KINDS) == 3
        value = np.where(is_lab, rng.lognormal(1.0, 1.2, len(row)), np.nan).astype(np.float32)
        self.parts.append(_rows(subject[row], at[row], code, np.round(value, 2)))

    def tail(self, size: int) -> np.ndarray:
        """`size` long-tail code indices, Zipf-like by rank."""
        rank = np.searchsorted(self.tail_cdf, self.rng.random(size), side="right")
        return len(self.codes) - TAIL_CODES + np.minimum(rank, TAIL_CODES - 1)


def shard_events(rows: pl.DataFrame, ids: np.ndarray, codes: pl.Series) -> pl.DataFrame:
    """MEDS event rows, sorted by subject and time with static rows first."""
    rows = rows.sort("subject", "time", nulls_last=False, maintain_order=True)
    return pl.DataFrame(
        {
            "subject_id": ids[rows["subject"].to_numpy()],
            "time": rows["time"].cast(pl.Datetime("us")),
            "code": codes.gather(rows["code"]),
            "numeric_value": rows["numeric_value"].fill_nan(None),
        }
    )


def write_shard_files(events: pl.DataFrame, split_of: pl.DataFrame, root: Path, shard: int) -> int:
    """Write one shard's rows as data/<split>/<shard>.parquet; returns the number of files."""
    files = 0
    tagged = events.join(split_of, on="subject_id", how="left", maintain_order="left")
    for split, _ in SPLIT_SHARES:
        part = tagged.filter(pl.col("split") == split).drop("split")
        if part.is_empty():
            continue
        path = root / meds.data_subdirectory / split / f"{shard}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = meds.DataSchema.align(part.to_arrow())
        pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS, compression="snappy")
        files += 1
    return files


def subject_ids_and_splits(subjects: int, seed: int) -> pl.DataFrame:
    """Non-contiguous ids (gaps of 1 to 9) and a seeded 80/10/10 split."""
    rng = np.random.default_rng([seed, 1_000_003])
    ids = 2_000_000 + np.cumsum(rng.integers(1, 10, subjects))
    names = np.array([name for name, _ in SPLIT_SHARES])
    split = names[_pick(rng, SPLIT_SHARES, subjects)]
    return pl.DataFrame({"subject_id": ids, "split": split})


def generate(out: Path, subjects: int, shards: int, seed: int = 0) -> int:
    """Write the dataset into the new folder `out`; returns the number of event rows."""
    if out.exists():
        raise SystemExit(f"{out} exists: the generator writes only a new folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        names = vocabulary()
        codes = pl.Series("code", names)
        index = {name: i for i, name in enumerate(names)}
        splits = subject_ids_and_splits(subjects, seed)
        rows, first = 0, 0
        for shard, size in enumerate(shard_sizes(subjects, shards)):
            rng = np.random.default_rng([seed, shard])
            ids = splits["subject_id"].to_numpy()[first : first + size]
            events = shard_events(ShardBuilder(rng, size, index).build(), ids, codes)
            write_shard_files(events, splits, tmp, shard)
            rows += events.height
            first += size
        (tmp / "metadata").mkdir()
        write_codes(pl.DataFrame({"code": names}), tmp)
        write_subject_splits(splits, tmp)
        write_dataset_metadata(
            {
                "dataset_name": "ehrbench-benchmark-second-generator",
                "dataset_version": f"n{subjects}-shards{shards}-seed{seed}",
                "etl_name": "benchmarks/second_generator.py",
                "etl_version": "1",
                "meds_version": "0.4.1",
                "created_at": "2025-01-01T00:00:00+00:00",
            },
            tmp,
        )
        meds_check(tmp)
        open_dataset(tmp)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not 1 <= args.shards <= args.subjects:
        parser.error("--shards must be between 1 and --subjects")
    rows = generate(args.out, args.subjects, args.shards, args.seed)
    print(f"wrote {args.subjects:,} subjects, {rows:,} rows, {args.shards} shards to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
