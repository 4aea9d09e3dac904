"""A MEDS 0.4 dataset folder, opened lazily, shard by shard.

Layout (MEDS 0.4): `data/**/*.parquet` (the event shards), `metadata/codes.parquet`,
`metadata/dataset.json`, `metadata/subject_splits.parquet`. Opening a folder validates it (see
`ehrbench.meds.validate`) unless the caller opts out.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import meds
import polars as pl

from ehrbench.errors import EhrbenchError
from ehrbench.meds.splits import DEFAULT_FRACTIONS, hash_splits
from ehrbench.meds.validate import (
    check_dataset_json,
    check_shard_footer,
    list_shards,
    read_codes,
    read_subject_splits,
    reading,
    validate_dataset,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MedsDataset:
    """An opened MEDS dataset: its root folder and its event shards in a stable order."""

    root: Path
    shards: tuple[Path, ...]

    @property
    def splits_path(self) -> Path:
        """Where the dataset's subject splits live (the file may not exist)."""
        return self.root / meds.subject_splits_filepath

    def scan(self, shard: Path) -> pl.LazyFrame:
        """Lazily read one event shard."""
        return pl.scan_parquet(shard, glob=False)

    def read_shard(self, shard: Path) -> pl.DataFrame:
        """Read one event shard into memory."""
        return pl.read_parquet(shard, glob=False)

    def subject_ids(self) -> pl.Series:
        """Every distinct subject_id in the data, sorted (reads only that column)."""
        return (
            pl.concat(
                [
                    self.collect(s, self.scan(s).select(pl.col("subject_id").unique()))
                    for s in self.shards
                ]
            )
            .get_column("subject_id")
            .unique()
            .sort()
        )

    def collect(self, shard: Path, query: pl.LazyFrame) -> pl.DataFrame:
        """Run `query` on `shard` (one of `scan(shard)`); a damaged page names the shard."""
        with reading(shard):
            return query.collect()

    def metadata(self) -> dict:
        """The validated `metadata/dataset.json`, or `{}` when the dataset has none."""
        path = self.root / meds.dataset_metadata_filepath
        return check_dataset_json(path) if path.exists() else {}

    def codes(self) -> pl.DataFrame | None:
        """The validated `metadata/codes.parquet`, or None when the dataset has none."""
        path = self.root / meds.code_metadata_filepath
        return read_codes(path) if path.exists() else None

    def subject_splits(self) -> pl.DataFrame:
        """The (subject_id, split) table from `metadata/subject_splits.parquet`.

        Without that file, every subject gets the stable hash split (70/15/15, see
        `ehrbench.meds.splits`), computed but not written, and a warning is logged: every task
        on this dataset then sees the same split, and `ehrbench splits DIR --write` saves it.
        """
        if self.splits_path.exists():
            return read_subject_splits(self.splits_path).select("subject_id", "split")
        logger.warning(
            "%s does not exist; using the stable hash split %s (train/tuning/held_out). "
            "Run `ehrbench splits %s --write` to save it with the dataset.",
            self.splits_path,
            "/".join(f"{f:g}" for f in DEFAULT_FRACTIONS),
            self.root,
        )
        return hash_splits(self.subject_ids().to_list(), DEFAULT_FRACTIONS)

    def fingerprint(self) -> str:
        """A short hash of every shard's and metadata file's relative path, size and mtime."""
        digest = hashlib.sha256()
        files = list(self.shards) + sorted((self.root / "metadata").glob("*"))
        for path in files:
            stat = path.stat()
            rel = path.relative_to(self.root).as_posix()
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]


def open_dataset(path: str | Path, *, validate: bool = True, deep: bool = True) -> MedsDataset:
    """Open the MEDS dataset folder at `path`, validating it unless `validate=False`.

    The cheap checks, from each shard's parquet footer (no stray file in `data/`, every shard
    readable with the MEDS columns and types, no null `subject_id`/`code`, no infinite
    `numeric_value`), always run: every reader refuses what `ehrbench validate` refuses there.
    `validate=False` skips only the checks that read whole columns; `deep=False` skips the
    costlier sort-order and code-coverage checks (see `ehrbench.meds.validate`).

    >>> import tempfile
    >>> from ehrbench.synth import generate_dataset
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = generate_dataset(f"{tmp.name}/meds", n_subjects=20, seed=0).root
    >>> len(open_dataset(root).shards)
    3
    >>> (root / "data" / "notes.txt").write_text("stray")
    5
    >>> open_dataset(root, validate=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ehrbench.errors.EhrbenchError: ...notes.txt is not a parquet event shard ...
    >>> tmp.cleanup()
    """
    root = Path(path)
    if not root.is_dir():
        raise EhrbenchError(f"{root} does not exist or is not a folder: expected a MEDS dataset.")
    data_dir = root / meds.data_subdirectory
    if not data_dir.is_dir():
        raise EhrbenchError(
            f"{root} is not a MEDS dataset folder: expected a `data/` subfolder holding the "
            "event shards (`data/**/*.parquet`)."
        )
    metadata_dir = root / "metadata"
    if metadata_dir.exists() and not metadata_dir.is_dir():
        raise EhrbenchError(
            f"{metadata_dir} is not a folder: MEDS keeps dataset.json, codes.parquet and "
            "subject_splits.parquet in a `metadata/` folder (which may be left out)."
        )
    shards = list_shards(data_dir)
    if not shards:
        raise EhrbenchError(f"{data_dir} holds no parquet shards: expected `data/**/*.parquet`.")
    for shard in shards:
        check_shard_footer(shard)
    dataset = MedsDataset(root=root, shards=shards)
    if validate:
        validate_dataset(dataset, deep=deep)
    return dataset
