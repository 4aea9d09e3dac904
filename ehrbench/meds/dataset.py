"""A MEDS 0.4 dataset folder, opened lazily, shard by shard.

Layout (MEDS 0.4): `data/**/*.parquet` (the event shards), `metadata/codes.parquet`,
`metadata/dataset.json`, `metadata/subject_splits.parquet`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ehrbench.errors import EhrbenchError


@dataclass(frozen=True)
class MedsDataset:
    """An opened MEDS dataset: its root folder and its event shards in a stable order."""

    root: Path
    shards: tuple[Path, ...]

    def scan(self, shard: Path) -> pl.LazyFrame:
        """Lazily read one event shard."""
        return pl.scan_parquet(shard)

    def read_shard(self, shard: Path) -> pl.DataFrame:
        """Read one event shard into memory."""
        return pl.read_parquet(shard)

    def subject_splits(self) -> pl.DataFrame:
        """The (subject_id, split) table from `metadata/subject_splits.parquet`."""
        path = self.root / "metadata" / "subject_splits.parquet"
        if not path.exists():
            raise EhrbenchError(
                f"{path} does not exist: the dataset at {self.root} has no subject splits. "
                "Run `ehrbench splits DIR --write` to assign a stable hash split and save it."
            )
        return pl.read_parquet(path, columns=["subject_id", "split"])

    def fingerprint(self) -> str:
        """A short hash of every shard's and metadata file's relative path, size and mtime."""
        digest = hashlib.sha256()
        files = list(self.shards) + sorted((self.root / "metadata").glob("*"))
        for path in files:
            stat = path.stat()
            rel = path.relative_to(self.root).as_posix()
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]


def open_dataset(path: str | Path) -> MedsDataset:
    """Open the MEDS dataset folder at `path`."""
    root = Path(path)
    data_dir = root / "data"
    if not data_dir.is_dir():
        raise EhrbenchError(
            f"{root} is not a MEDS dataset folder: expected a `data/` subfolder holding the "
            "event shards (`data/**/*.parquet`)."
        )
    shards = tuple(sorted(data_dir.rglob("*.parquet")))
    if not shards:
        raise EhrbenchError(f"{data_dir} holds no parquet shards: expected `data/**/*.parquet`.")
    return MedsDataset(root=root, shards=shards)
