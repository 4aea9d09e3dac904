"""A hostile pass over the input side: malformed configs, predicates files, datasets, label files
and command-line arguments of the reader verbs. Each must end in a clear error: exit 2, a
one-paragraph message naming the file, key or argument, and no "internal error" or traceback.

Each case builds its input in `tmp_path` and returns (argv, what the message must name).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from ehrbench.cli import main

REPO = Path(__file__).resolve().parents[1]
COHORT_TEXT = (REPO / "cohorts" / "mortality_in_hospital.yaml").read_text()
PREDICATES = str(REPO / "cohorts" / "predicates" / "synthetic.yaml")
SHARD = Path("data") / "train" / "0.parquet"


@pytest.fixture
def good(synthetic_with_labels) -> tuple[Path, Path]:
    """The shared valid dataset and its labels (tests break copies of them)."""
    return synthetic_with_labels


class Env:
    """A case's workspace: the tmp folder, a private copy of the dataset, the good labels."""

    def __init__(self, tmp: Path, good: tuple[Path, Path]):
        self.tmp, self.good_data, self.labels = tmp, good[0], good[1]

    def file(self, name: str, text: str | bytes) -> Path:
        path = self.tmp / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path

    def data(self) -> Path:
        root = self.tmp / "meds"
        if not root.exists():
            shutil.copytree(self.good_data, root)
        return root

    def check(self, cohort: Path, data: Path | None = None) -> list[str]:
        argv = ["cohort", "check", str(cohort), "--predicates", PREDICATES]
        return argv + (["--data", str(data)] if data else [])

    def extract(self, data: Path | None = None, cohort: Path | None = None) -> list[str]:
        cohort = cohort or self.file("c.yaml", COHORT_TEXT)
        data = data or self.data()
        return ["cohort", "extract", str(cohort), "--predicates", PREDICATES,
                "--data", str(data), "--out", str(self.tmp / "out.parquet")]  # fmt: skip

    def explain(self, subject: str) -> list[str]:
        cohort = self.file("c.yaml", COHORT_TEXT)
        return ["cohort", "explain", str(cohort), "--predicates", PREDICATES,
                "--data", str(self.good_data), "--subject", subject]  # fmt: skip

    def featurize(self, labels: Path, *extra: str) -> list[str]:
        return ["featurize", "tabular", "--data", str(self.good_data), "--labels", str(labels),
                "--out", str(self.tmp / "features"), *extra]  # fmt: skip


Case = Callable[[Env], tuple[list[str], str]]


def _cohort_edit(old: str, new: str, names: str) -> Case:
    """A cohort config with `old` replaced by `new`; the message must name `names`."""

    def case(env: Env) -> tuple[list[str], str]:
        assert old in COHORT_TEXT
        path = env.file("c.yaml", COHORT_TEXT.replace(old, new, 1))
        return env.check(path), names

    return case


def _cohort_text(text: str | bytes, names: str = "c.yaml") -> Case:
    def case(env: Env) -> tuple[list[str], str]:
        return env.check(env.file("c.yaml", text)), names

    return case


def _predicates_text(text: str, names: str = "p.yaml") -> Case:
    def case(env: Env) -> tuple[list[str], str]:
        cohort = env.file("c.yaml", COHORT_TEXT)
        path = env.file("p.yaml", text)
        return ["cohort", "check", str(cohort), "--predicates", str(path)], names

    return case


def _predicate(entry: str, names: str) -> Case:
    """The synthetic predicates with `death` redefined as `entry` (flow YAML)."""
    text = Path(PREDICATES).read_text().replace("  death: {code: MEDS_DEATH}", f"  death: {entry}")
    return _predicates_text(text, names)


def _shard(change: Callable[[pl.DataFrame], pl.DataFrame], names: str = "0.parquet") -> Case:
    def case(env: Env) -> tuple[list[str], str]:
        path = env.data() / SHARD
        change(pl.read_parquet(path)).write_parquet(path)
        return env.extract(), names

    return case


def _dataset(build: Callable[[Path], object], names: str, verb: str = "extract") -> Case:
    def case(env: Env) -> tuple[list[str], str]:
        root = env.data()
        build(root)
        argv = env.extract(root) if verb == "extract" else [verb, str(root)]
        return argv, names

    return case


def _labels(build: Callable[[Env], Path], names: str) -> Case:
    def case(env: Env) -> tuple[list[str], str]:
        return env.featurize(build(env)), names

    return case


def _label_frame(change: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable[[Env], Path]:
    def build(env: Env) -> Path:
        path = env.tmp / "labels.parquet"
        change(pl.read_parquet(env.labels)).write_parquet(path)
        return path

    return build


def _label_folder(env: Env) -> Path:
    """A folder of label files: pyarrow would read them all as one table."""
    folder = env.tmp / "labels"
    folder.mkdir()
    for name in ("a.parquet", "b.parquet"):
        shutil.copy(env.labels, folder / name)
    return folder


def _swapped_labels(env: Env) -> Path:
    """A label file beside an extraction's manifest that lists another file under its name."""
    path = env.tmp / "l.parquet"
    shutil.copy(env.labels, path)
    env.file("l.manifest.json", json.dumps({"files": {"l.parquet": "0" * 64}}))
    return path


def _train(env: Env, *extra: str) -> list[str]:
    return ["train", "--data", str(env.good_data), "--labels", str(env.labels),
            "--model", "logreg", "--out", str(env.tmp / "run"), *extra]  # fmt: skip


def _argv(make: Callable[[Env], list[str]], names: str) -> Case:
    def case(env: Env) -> tuple[list[str], str]:
        return make(env), names

    return case


def _chain(n: int) -> str:
    """A cohort whose windows chain `n` times 100,000 days forward."""
    windows = "".join(
        f"  w{i}:\n    start: {'trigger' if i == 0 else f'w{i - 1}.end'}\n"
        "    end: start + 100000d\n    start_inclusive: true\n    end_inclusive: true\n"
        for i in range(n)
    )
    return (
        "predicates:\n  admission: ???\n  death: ???\ntrigger: admission\nwindows:\n"
        + windows
        + f"  w{n - 1}x:\n    start: w{n - 1}.end\n    end: start + 1d\n"
        "    start_inclusive: true\n    end_inclusive: true\n    label: death\n"
        "    index_timestamp: start\n"
    )


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


CASES: dict[str, Case] = {
    # --- cohort configs ---------------------------------------------------------------------
    "empty cohort": _cohort_text(""),
    "cohort is a list": _cohort_text("- a\n- b\n"),
    "cohort is a scalar": _cohort_text("hello\n"),
    "cohort not utf-8": _cohort_text(b"\xff\xfe\x00bad"),
    "cohort tab indentation": _cohort_text("predicates:\n\tadmission: x\n"),
    "cohort unclosed quote": _cohort_text('trigger: "admission\n'),
    "cohort is a folder": _argv(
        lambda e: ["cohort", "check", str(e.tmp)], str(Path("does not exist or is not a file"))
    ),
    "cohort missing": _argv(lambda e: ["cohort", "check", str(e.tmp / "no.yaml")], "no.yaml"),
    "unknown top-level key": _cohort_edit(
        "trigger: admission", "trigger: admission\ntrigr: x", "trigr"
    ),
    "trigger missing": _cohort_edit("trigger: admission\n", "", "trigger"),
    "trigger undefined": _cohort_edit("trigger: admission", "trigger: admision", "admision"),
    "trigger is a list": _cohort_edit("trigger: admission", "trigger: [admission]", "trigger"),
    "windows is a list": _cohort_text(
        "predicates: {a: {code: X}}\ntrigger: a\nwindows: [1, 2]\n", "windows"
    ),
    "inclusive missing": _cohort_edit("    start_inclusive: true\n", "", "start_inclusive"),
    "inclusive not bool": _cohort_edit(
        "start_inclusive: true", "start_inclusive: maybe", "start_inclusive"
    ),
    "duration without unit": _cohort_edit("trigger + 24h", "trigger + 24", "windows.input.end"),
    "duration in months": _cohort_edit("trigger + 24h", "trigger + 1 month", "windows.input.end"),
    "signed duration": _cohort_edit("trigger + 24h", "trigger + -24h", "windows.input.end"),
    "dangling operator": _cohort_edit("trigger + 24h", "trigger +", "windows.input.end"),
    "absurd duration": _cohort_edit(
        "trigger + 24h", "trigger + 99999999999999999999999d", "windows.input.end"
    ),
    "huge float duration": _cohort_edit(
        "trigger + 24h", "trigger + " + "9" * 400 + ".5h", "windows.input.end"
    ),
    "unknown window ref": _cohort_edit("start: gap.end", "start: gapp.end", "gapp"),
    "boundary is a number": _cohort_edit("end: trigger + 24h", "end: 42", "windows.input.end"),
    "has not a mapping": _cohort_edit(
        '    has:\n      admission: "(None, 0)"\n      discharge_or_death: "(None, 0)"\n',
        "    has: [admission]\n",
        "windows.gap.has",
    ),
    "has bad range": _cohort_edit(
        'admission: "(None, 0)"', 'admission: "(a, b)"', "windows.gap.has.admission"
    ),
    "label undefined": _cohort_edit("label: death", "label: dead", "dead"),
    "index_timestamp bad": _cohort_edit(
        "index_timestamp: end", "index_timestamp: middle", "index_timestamp"
    ),
    "duplicate key": _cohort_edit(
        "trigger: admission", "trigger: admission\ntrigger: death", "duplicate"
    ),
    "expr unbalanced": _cohort_edit(
        '{expr: "or(discharge, death)"}', '{expr: "or(discharge, death"}', "discharge_or_death"
    ),
    "expr self cycle": _cohort_edit(
        '{expr: "or(discharge, death)"}',
        '{expr: "or(discharge, discharge_or_death)"}',
        "discharge_or_death",
    ),
    "null key": _cohort_edit("  death: ???", "  death: ???\n  null: {code: X}", "predicates.null"),
    "set value": _cohort_edit("  death: ???", "  death: !!set {a, b}", "predicates.death"),
    "python tag": _cohort_edit(
        "  death: ???", "  death: !!python/object:os.system x", "predicates.death"
    ),
    "alias bomb": _cohort_text(
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
            for p, n in zip("abcdef", "bcdefg", strict=True)
        )
        + "predicates: *g\n",
        "alias bomb",
    ),
    "deep nesting": _cohort_text(
        "predicates: " + "{a: " * 400 + "1" + "}" * 400 + "\n", "nested more than"
    ),
    "anchor cycle": _cohort_text("predicates: &p\n  a: *p\n", "cycle"),
    # --- predicates files -------------------------------------------------------------------
    "predicates missing": _argv(
        lambda e: [
            "cohort",
            "check",
            str(e.file("c.yaml", COHORT_TEXT)),
            "--predicates",
            str(e.tmp / "nope.yaml"),
        ],
        "nope.yaml",
    ),
    "predicates is a list": _predicates_text("- admission\n"),
    "predicates with windows": _predicates_text("windows: {}\npredicates: {}\n", "windows"),
    "predicate code int": _predicate("{code: 123}", "predicates.death"),
    "predicate code empty list": _predicate("{code: []}", "predicates.death"),
    "predicate any empty": _predicate("{code: {any: []}}", "predicates.death"),
    "predicate bad regex": _predicate('{code: {regex: "("}}', "predicates.death"),
    "predicate value_min text": _predicate('{code: X, value_min: "abc"}', "value_min"),
    "predicate value_min nan": _predicate("{code: X, value_min: .nan}", "value_min"),
    "predicate static maybe": _predicate("{code: X, static: maybe}", "static"),
    "predicate code and expr": _predicate(
        '{code: X, expr: "or(admission, discharge)"}', "predicates.death"
    ),
    # --- datasets ---------------------------------------------------------------------------
    "data missing": _argv(lambda e: e.extract(e.tmp / "nothing"), "nothing"),
    "data is a file": _argv(lambda e: e.extract(e.file("f", "x")), str(Path("f"))),
    "no data folder": _dataset(lambda r: shutil.rmtree(r / "data"), "data", "info"),
    "empty data folder": _dataset(
        lambda r: (shutil.rmtree(r / "data"), (r / "data").mkdir()), "parquet shards", "validate"
    ),
    "data folder is a file": _dataset(
        lambda r: (shutil.rmtree(r / "data"), (r / "data").write_text("x")), "data", "info"
    ),
    "subject_id as text": _shard(lambda f: f.with_columns(pl.col("subject_id").cast(pl.String))),
    "numeric_value float64": _shard(
        lambda f: f.with_columns(pl.col("numeric_value").cast(pl.Float64))
    ),
    "time zone aware": _shard(lambda f: f.with_columns(pl.col("time").dt.replace_time_zone("UTC"))),
    "time as date": _shard(lambda f: f.with_columns(pl.col("time").cast(pl.Date))),
    "time column missing": _shard(lambda f: f.drop("time")),
    "code column missing": _shard(lambda f: f.drop("code")),
    "positive infinity": _shard(
        lambda f: f.with_columns(pl.col("numeric_value").fill_null(float("inf")).cast(pl.Float32))
    ),
    "dataset.json garbage": _dataset(
        lambda r: (r / "metadata" / "dataset.json").write_text("{not json"), "dataset.json", "info"
    ),
    "dataset.json is a folder": _dataset(
        lambda r: (
            _remove(r / "metadata" / "dataset.json"),
            (r / "metadata" / "dataset.json").mkdir(),
        ),
        "dataset.json",
        "info",
    ),
    "codes.parquet garbage": _dataset(
        lambda r: (r / "metadata" / "codes.parquet").write_text("x"), "codes.parquet", "validate"
    ),
    "splits garbage": _dataset(
        lambda r: (r / "metadata" / "subject_splits.parquet").write_bytes(b""),
        "subject_splits.parquet",
        "info",
    ),
    "splits duplicate subject": _dataset(
        lambda r: pl.concat(
            [pl.read_parquet(p := r / "metadata" / "subject_splits.parquet")] * 2
        ).write_parquet(p),
        "subject_splits.parquet",
        "info",
    ),
    "splits name ghosts": _dataset(
        lambda r: pl.concat(
            [
                s := pl.read_parquet(p := r / "metadata" / "subject_splits.parquet"),
                pl.DataFrame({"subject_id": [7], "split": ["train"]}, schema=s.schema),
            ]
        ).write_parquet(p),
        "subject_splits.parquet",
        "info",
    ),
    "metadata is a file": _dataset(
        lambda r: (shutil.rmtree(r / "metadata"), (r / "metadata").write_text("x")),
        "metadata",
        "info",
    ),
    "subject in two shards": _dataset(
        lambda r: shutil.copy(r / SHARD, r / "data" / "held_out" / "9.parquet"),
        "9.parquet",
        "validate",
    ),
    "shard unsorted": _dataset(
        lambda r: pl.read_parquet(r / SHARD).reverse().write_parquet(r / SHARD),
        "0.parquet",
        "validate",
    ),
    "hidden stray file": _dataset(
        lambda r: (r / "data" / ".DS_Store").write_text("x"), ".DS_Store"
    ),
    # --- label files (featurize) ------------------------------------------------------------
    "labels missing": _labels(lambda e: e.tmp / "none.parquet", "none.parquet"),
    "labels garbage": _labels(lambda e: e.file("l.parquet", "garbage"), "l.parquet"),
    "labels zero bytes": _labels(lambda e: e.file("l.parquet", b""), "l.parquet"),
    "labels is a folder": _labels(
        lambda e: (e.tmp / "l.parquet").mkdir() or e.tmp / "l.parquet", "l.parquet"
    ),
    "labels a folder of label files": _labels(_label_folder, "is a folder"),
    "labels not the file of their manifest": _labels(_swapped_labels, "l.manifest.json"),
    "labels no prediction_time": _labels(
        _label_frame(lambda f: f.drop("prediction_time")), "prediction_time"
    ),
    "labels text subject_id": _labels(
        _label_frame(lambda f: f.with_columns(pl.col("subject_id").cast(pl.String))), "subject_id"
    ),
    "labels null prediction_time": _labels(
        _label_frame(
            lambda f: f.with_columns(pl.lit(None, pl.Datetime("us")).alias("prediction_time"))
        ),
        "prediction_time",
    ),
    "labels unknown subject": _labels(
        _label_frame(lambda f: f.with_columns(pl.col("subject_id") + 10**9)),
        "are not in the dataset",
    ),
    # --- command-line arguments of the reader verbs -----------------------------------------
    "train seed negative": _argv(lambda e: _train(e, "--seed", "-1"), "--seed"),
    "train seed past 32 bits": _argv(lambda e: _train(e, "--seed", str(2**32)), "--seed"),
    "featurize sequence max events past the bound": _argv(
        lambda e: [
            "featurize",
            "sequence",
            "--data",
            str(e.good_data),
            "--labels",
            str(e.labels),
            "--out",
            str(e.tmp / "s"),
            "--max-events",
            "100000000",
        ],  # fmt: skip
        "max_events",
    ),
    "explain subject not int": _argv(lambda e: e.explain("abc"), "--subject"),
    "explain subject too large": _argv(lambda e: e.explain("9" * 30), "9" * 30),
    "explain subject absent": _argv(lambda e: e.explain("-1"), "-1"),
    "info top negative": _argv(lambda e: ["info", str(e.good_data), "--top", "-5"], "--top"),
    "splits fractions text": _argv(
        lambda e: ["splits", str(e.good_data), "--fractions", "a,b"], "--fractions"
    ),
    "splits fractions sum": _argv(
        lambda e: ["splits", str(e.good_data), "--fractions", "0.5,0.5,0.5"], "0.5"
    ),
    "splits fractions nan": _argv(
        lambda e: ["splits", str(e.good_data), "--fractions", "nan,0,1"], "nan"
    ),
    "cohorts unknown library": _argv(lambda e: ["cohorts", "--library", str(e.tmp / "lib")], "lib"),
    "cohorts unknown predicates": _argv(
        lambda e: ["cohorts", "--data", str(e.good_data), "--predicates", "nonsense"], "nonsense"
    ),
    "featurize bad window": _argv(lambda e: e.featurize(e.labels, "--windows", "7x"), "7x"),
    "featurize negative min-count": _argv(
        lambda e: e.featurize(e.labels, "--min-count", "-1"), "--min-count"
    ),
    "featurize unknown split": _argv(lambda e: e.featurize(e.labels, "--fit-on", "trian"), "trian"),
}
# Cases on the output side, which this branch leaves to the writers' owners.


# The output side: an output path that cannot be written is refused before any work.
OUTPUT_SIDE = {
    "extract empty out": _argv(lambda e: [*e.extract()[:-1], ""], "--out"),
    "featurize cache is a file": _argv(
        lambda e: e.featurize(e.labels, "--cache", str(e.file("taken", "a user's file"))),
        "--cache",
    ),
    "featurize cache inside the dataset": _argv(
        lambda e: e.featurize(e.labels, "--cache", str(e.good_data / "data" / "cache")),
        "--cache",
    ),
}


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code)


@pytest.mark.parametrize(
    "name",
    [*CASES, *OUTPUT_SIDE],
)
def test_a_malformed_input_is_a_clear_error(good, tmp_path, capsys, name):
    argv, names = {**CASES, **OUTPUT_SIDE}[name](Env(tmp_path, good))
    capsys.readouterr()
    code = _run(["-q", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert names in err, err
    assert "internal error" not in err and "Traceback" not in err, err


def test_windows_chained_past_year_9999_still_extract(good, tmp_path, capsys):
    """Forty windows of 100,000 days each, chained: within datetime64[us], no crash."""
    env = Env(tmp_path, good)
    assert _run(["-q", *env.extract(cohort=env.file("c.yaml", _chain(40)))]) == 0
    assert "internal error" not in capsys.readouterr().err


def test_an_unknown_predicate_key_is_an_other_column_test_as_in_aces(good, tmp_path, capsys):
    """`valu_min` is a column equality test in ACES: a warning with a hint, not an error."""
    argv, _ = _predicate("{code: X, valu_min: 1}", "")(Env(tmp_path, good))
    assert _run(argv) == 0
    assert "did you mean 'value_min'?" in capsys.readouterr().err
