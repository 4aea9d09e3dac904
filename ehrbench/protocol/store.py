"""The resumable results store: one folder per run, so a grid can stop and resume anywhere.

Layout under the store root:

    runs/<run_id>/predictions.parquet   meds-evaluation prediction frame (ok runs)
    runs/<run_id>/metrics.parquet       metrics table, `METRIC_TABLE_SCHEMA` (ok runs)
    runs/<run_id>/run.json              key, status ("ok" | "failed"), error, info

`run.json` is written last and every file atomically, so a run interrupted while saving leaves no
record and is simply recomputed; a record on disk always has its files complete. The run id is a
hash of the run key (dataset fingerprint, cohort, model, k, seed, config hash), so the same run
always lands in the same folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ehrbench.digest import json_digest
from ehrbench.errors import EhrbenchError
from ehrbench.io import write_parquet_atomic, write_text_atomic
from ehrbench.meds.label_kinds import BINARY_TARGET, PREDICTED_COLUMNS, prediction_target
from ehrbench.metrics.bootstrap import METRIC_TABLE_SCHEMA
from ehrbench.metrics.evaluate import check_predictions
from ehrbench.protocol.fewshot import ALL, MAX_K, K, parse_k

STATUSES = ("ok", "failed")
KEY_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "dataset_fingerprint": pl.String(),
    "cohort": pl.String(),
    "model": pl.String(),
    "k": pl.String(),
    "seed": pl.Int64(),
    "config_hash": pl.String(),
}
RUNS_SCHEMA: dict[str, pl.DataType] = {
    **KEY_SCHEMA,
    "status": pl.String(),
    "error": pl.String(),
    "info": pl.String(),
}
RESULTS_SCHEMA: dict[str, pl.DataType] = {**KEY_SCHEMA, **METRIC_TABLE_SCHEMA}
_RECORD = "run.json"
_METRICS = "metrics.parquet"
_PREDICTIONS = "predictions.parquet"


@dataclass(frozen=True)
class RunKey:
    """What identifies a run; equal keys mean the run need not be computed again."""

    dataset_fingerprint: str
    cohort: str
    model: str
    k: K
    seed: int
    config_hash: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", parse_k(self.k))

    def as_dict(self) -> dict[str, str | int]:
        """The key as JSON-ready fields (k as a string: "1" .. "128" or "all")."""
        return {
            "dataset_fingerprint": self.dataset_fingerprint,
            "cohort": self.cohort,
            "model": self.model,
            "k": str(self.k),
            "seed": int(self.seed),
            "config_hash": self.config_hash,
        }

    @property
    def run_id(self) -> str:
        """A stable 16-hex-digit hash of the key."""
        return json_digest(self.as_dict())


def _k_order() -> pl.Expr:
    return pl.when(pl.col("k") == ALL).then(MAX_K + 1).otherwise(pl.col("k").cast(pl.Int64))


class ResultsStore:
    """Run records under `root`; see the module docstring for the layout."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def run_dir(self, key: RunKey) -> Path:
        """The folder of `key`'s run (it may not exist yet)."""
        return self.root / "runs" / key.run_id

    def record(self, key: RunKey) -> dict[str, Any] | None:
        """The parsed `run.json` of `key`, or None if the run has no record."""
        return self._read_record(self.run_dir(key) / _RECORD)

    def status(self, key: RunKey) -> str | None:
        """The run's status: "ok", "failed", or None when it never finished."""
        record = self.record(key)
        return None if record is None else record["status"]

    def has(self, key: RunKey, *, retry_failed: bool = False) -> bool:
        """True when the run should be skipped: it finished ok, or failed and no retry is asked."""
        status = self.status(key)
        return status == "ok" or (status == "failed" and not retry_failed)

    def save(
        self,
        key: RunKey,
        metrics: pl.DataFrame | None = None,
        predictions: pl.DataFrame | None = None,
        *,
        status: str = "ok",
        error: str | None = None,
        info: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Record a finished run and return its folder.

        An ok run needs `metrics` (`METRIC_TABLE_SCHEMA`) and `predictions` (meds-evaluation
        form of its label kind, e.g. with `predicted_boolean_value`); a failed run needs `error`
        and takes neither.
        A failed record may be replaced; an ok record only with `overwrite=True`. `info` is
        any JSON-ready detail (chosen hyperparameters, fit time, ...).
        """
        self._check_save(key, metrics, predictions, status, error, overwrite)
        # Serialise first: a record that cannot be written must not cost the old one.
        record = {
            "run_id": key.run_id,
            "key": key.as_dict(),
            "status": status,
            "error": error,
            "info": dict(info or {}),
        }
        try:
            text = json.dumps(record, sort_keys=True, indent=2, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise EhrbenchError(
                f"results store: the info of run {key.run_id} is not JSON-ready ({exc})."
            ) from exc
        folder = self.run_dir(key)
        for stale in (_RECORD, _METRICS, _PREDICTIONS):
            (folder / stale).unlink(missing_ok=True)
        if status == "ok":
            if prediction_target(predictions, "predictions") == BINARY_TARGET:
                predictions = predictions.with_columns(
                    pl.col("predicted_boolean_probability").cast(pl.Float32)
                )
            write_parquet_atomic(predictions, folder / _PREDICTIONS)
            write_parquet_atomic(
                metrics.select(pl.col(c).cast(t) for c, t in METRIC_TABLE_SCHEMA.items()),
                folder / _METRICS,
            )
        write_text_atomic(text + "\n", folder / _RECORD)
        return folder

    def _check_save(
        self,
        key: RunKey,
        metrics: pl.DataFrame | None,
        predictions: pl.DataFrame | None,
        status: str,
        error: str | None,
        overwrite: bool,
    ) -> None:
        if status not in STATUSES:
            raise EhrbenchError(f"results store: status must be one of {STATUSES}, got {status!r}.")
        if status == "failed" and (not error or metrics is not None or predictions is not None):
            raise EhrbenchError(
                "results store: a failed run is saved with its `error` message and without "
                "metrics or predictions."
            )
        if status == "ok":
            if metrics is None or predictions is None or error is not None:
                raise EhrbenchError(
                    "results store: an ok run is saved with both metrics and predictions and "
                    "no error."
                )
            missing = [c for c in METRIC_TABLE_SCHEMA if c not in metrics.columns]
            if missing:
                raise EhrbenchError(
                    f"results store: the metrics of run {key.run_id} lack column(s) {missing}; "
                    f"expected {list(METRIC_TABLE_SCHEMA)}."
                )
            source = f"results store: predictions of run {key.run_id}"
            check_predictions(predictions, source)
            predicted = PREDICTED_COLUMNS[prediction_target(predictions, source).kind]
            if predicted not in predictions.columns:
                raise EhrbenchError(
                    f"results store: predictions of run {key.run_id} lack column "
                    f"`{predicted}`, required by meds-evaluation."
                )
        if not overwrite and self.status(key) == "ok":
            raise EhrbenchError(
                f"results store: run {key.run_id} ({key.cohort}, {key.model}, k={key.k}, "
                f"seed={key.seed}) already finished in {self.run_dir(key)}; it is not "
                "overwritten unless asked."
            )

    @staticmethod
    def _read_record(path: Path) -> dict[str, Any] | None:
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EhrbenchError(
                f"results store: {path} is not a readable run record ({exc}); delete that run "
                "folder to recompute the run."
            ) from exc
        if record.get("status") not in STATUSES or "key" not in record:
            raise EhrbenchError(
                f"results store: {path} has no valid `status` ({STATUSES}) or `key`; delete "
                "that run folder to recompute the run."
            )
        return record

    def _records(self) -> list[tuple[Path, dict[str, Any]]]:
        runs = self.root / "runs"
        if not runs.is_dir():
            return []
        found = ((d, self._read_record(d / _RECORD)) for d in sorted(runs.iterdir()))
        return [(d, r) for d, r in found if r is not None]

    def runs(self) -> pl.DataFrame:
        """One row per recorded run: key fields, status, error, info (JSON text)."""
        rows = [
            {
                "run_id": r["run_id"],
                **r["key"],
                "status": r["status"],
                "error": r["error"],
                "info": json.dumps(r["info"], sort_keys=True),
            }
            for _, r in self._records()
        ]
        frame = pl.DataFrame(rows, schema=RUNS_SCHEMA)
        return frame.sort("cohort", "model", _k_order(), "seed", "run_id")

    def load_all(self) -> pl.DataFrame:
        """Every ok run's metrics: one row per (run, group, level, metric), `RESULTS_SCHEMA`."""
        tables = []
        for folder, record in self._records():
            if record["status"] != "ok":
                continue
            key = pl.DataFrame([{"run_id": record["run_id"], **record["key"]}])
            metrics = pl.read_parquet(folder / _METRICS).with_row_index("_row")
            tables.append(key.join(metrics, how="cross"))
        if not tables:
            return pl.DataFrame(schema=RESULTS_SCHEMA)
        frame = pl.concat(tables).sort("cohort", "model", _k_order(), "seed", "run_id", "_row")
        return frame.select(pl.col(c).cast(t) for c, t in RESULTS_SCHEMA.items())

    def predictions(self, key: RunKey) -> pl.DataFrame:
        """The stored prediction frame of an ok run."""
        if self.status(key) != "ok":
            raise EhrbenchError(
                f"results store: run {key.run_id} ({key.cohort}, {key.model}, k={key.k}, "
                f"seed={key.seed}) has no finished predictions in {self.run_dir(key)}."
            )
        return pl.read_parquet(self.run_dir(key) / _PREDICTIONS)
