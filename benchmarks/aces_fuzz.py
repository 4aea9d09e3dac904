"""Differential fuzzing: random cohort configs on a random small dataset, ehrbench vs ACES 0.7.3.

The dataset has a few dozen subjects with events on an hourly grid (many ties, repeated codes,
static rows, values near the bounds); each config draws predicates (plain with value bounds,
regex, derived), a trigger, and a small window tree with random boundaries (temporal, `->`,
`<-`, `null`), inclusivity, `has` ranges, label and index timestamp. Both tools run on it and
`aces_compare.compare_cohort` compares their rows with the spec's section-9 differences
accounted for. Every disagreement or failure is saved as a case folder (events, cohort, both
label files) under `--out` for minimising by hand.

Usage: .venv/bin/python benchmarks/aces_fuzz.py --configs 40 --seed 0 --out /tmp/aces_fuzz
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
from pathlib import Path

import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aces_compare import format_report, safe_compare  # noqa: E402
from aces_run import aces_available  # noqa: E402

CODES = ("A", "B", "C", "D")
DELTAS = ("1h", "6h", "12h", "24h", "2d")
RANGES = ("(None, 0)", "(1, None)", "(2, None)", "(None, 1)", "(1, 2)")
BASE = dt.datetime(2020, 1, 1)


def random_events(rng: random.Random, subjects: int) -> pl.DataFrame:
    """Events on an hourly grid over ten days: ties, repeats, static rows, edge values."""
    rows = []
    for subject in range(1, subjects + 1):
        if rng.random() < 0.7:
            rows.append((subject, None, rng.choice(["SEX//F", "SEX//M"]), None))
        for _ in range(rng.randint(1, 14)):
            time = BASE + dt.timedelta(hours=rng.randrange(0, 240, rng.choice([1, 6, 12])))
            value = rng.choice([None, 1.0, 1.2, 2.5, 3.0, 3.7, 5.0])
            for _ in range(rng.choice([1, 1, 1, 2])):
                rows.append((subject, time, rng.choice(CODES), value))
    schema = {
        "subject_id": pl.Int64,
        "time": pl.Datetime("us"),
        "code": pl.String,
        "numeric_value": pl.Float32,
    }
    return pl.DataFrame(rows, schema=schema, orient="row").sort(
        "subject_id", "time", nulls_last=False, maintain_order=True
    )


def random_predicates(rng: random.Random) -> dict:
    """Plain predicates a, b, c, d, a bounded one, a regex, and two derived ones."""
    bound = rng.choice([1.2, 2.5, 3.0, 5.0])
    inclusive = rng.choice([True, False])
    return {
        "a": {"code": "A"},
        "b": {"code": "B"},
        "c": {"code": "C"},
        "d": {"code": "D"},
        "high": {
            "code": {"regex": "^[AB]$"},
            "value_min": bound,
            "value_min_inclusive": inclusive,
        },
        "low": {"code": {"any": ["C", "D"]}, "value_max": bound, "value_max_inclusive": inclusive},
        "a_or_c": {"expr": "or(a, c)"},
        "b_and_high": {"expr": "and(b, high)"},
    }


PLAIN = ("a", "b", "c", "d", "high", "low", "a_or_c", "b_and_high")
COUNTABLE = (*PLAIN, "_ANY_EVENT", "_RECORD_START", "_RECORD_END")


def random_window(rng: random.Random, name: str, anchors: list[str]) -> dict:
    """One window: one side anchored outside (`anchors`), the other on the window itself."""
    outside = rng.choice(anchors)
    outside += rng.choice(["", "", f" + {rng.choice(DELTAS)}", f" - {rng.choice(DELTAS)}"])
    event = rng.choice(PLAIN[:4] + ("a_or_c",))
    if rng.random() < 0.5:  # anchored start; end from start
        start = outside
        end = rng.choice([f"start + {rng.choice(DELTAS)}", f"start -> {event}", None, "start + 0h"])
    else:  # anchored end; start from end
        end = outside
        start = rng.choice([f"end - {rng.choice(DELTAS)}", f"end <- {event}", None])
    window = {
        "start": start,
        "end": end,
        "start_inclusive": rng.choice([True, False]),
        "end_inclusive": rng.choice([True, False]),
    }
    if rng.random() < 0.6:
        picks = rng.sample(COUNTABLE, rng.randint(1, 2))
        window["has"] = {p: rng.choice(RANGES) for p in picks}
    return window


def random_cohort(rng: random.Random) -> dict:
    """A random config within the grammar both tools accept."""
    config = {
        "predicates": random_predicates(rng),
        "trigger": rng.choice((*PLAIN, "_ANY_EVENT")),
    }
    if rng.random() < 0.2:
        config["patient_demographics"] = {"female": {"code": "SEX//F"}}
    windows, anchors = {}, ["trigger"]
    for i in range(rng.randint(1, 3)):
        name = f"w{i}"
        windows[name] = random_window(rng, name, anchors)
        anchors += [f"{name}.start", f"{name}.end"]
    # ACES crashes on a label or index timestamp on a `+ 0h` window (ACES_NOTES.md, #212).
    names = [n for n, w in windows.items() if w["end"] != "start + 0h"]
    if not names:
        windows["w0"]["end"], names = "start + 1h", ["w0"]
    windows[rng.choice(names)]["label"] = rng.choice(PLAIN)
    if rng.random() < 0.9:
        windows[rng.choice(names)]["index_timestamp"] = rng.choice(["start", "end"])
    config["windows"] = windows
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=40)
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/aces_fuzz"))
    args = parser.parse_args(argv)
    if not aces_available():
        print("ACES is not installed: run `bash benchmarks/aces_env.sh` first.")
        return 2
    rng = random.Random(args.seed)
    data = args.out / "data"
    (data / "data").mkdir(parents=True, exist_ok=True)
    events = random_events(rng, args.subjects)
    events.write_parquet(data / "data" / "0.parquet")
    results, bad = [], 0
    for i in range(args.configs):
        path = args.out / f"cohort_{i:03d}.yaml"
        path.write_text(yaml.safe_dump(random_cohort(rng), sort_keys=False))
        result = safe_compare(path, data, None)
        results.append(result)
        status = "ok" if result.agrees else f"DIFFERS ({result.failure or result.mismatches})"
        bad += not result.agrees
        print(f"{path.name}: {status}; {result.expected or ''}", flush=True)
    print(format_report([r for r in results if not r.agrees]) if bad else "all agree")
    print(f"{bad} of {args.configs} configs disagree or fail; cases in {args.out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
