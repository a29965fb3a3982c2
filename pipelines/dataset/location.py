"""Where a dataset lives (local directory or ``s3://`` / ``gs://`` prefix) and how files land there atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem


class DatasetLocation:
    """A dataset root. Local roots get temp-name + fsync + rename; object stores get single PUTs,
    which are atomic per object (a reader sees the whole object or none)."""

    def __init__(self, url: str, **storage_options):
        """``storage_options`` go to fsspec (endpoint, credentials); fsspec's own config files and
        environment variables (``FSSPEC_S3_ENDPOINT_URL``, ...) apply as well."""
        self.url = url.rstrip("/") or url
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **storage_options)
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"DatasetLocation({self.url!r})"

    def path(self, *parts: str) -> str:
        """Path of ``parts`` under the root, as the filesystem names it."""
        return "/".join([self.root.rstrip("/"), *parts]) if parts else self.root

    def local_path(self, *parts: str) -> Path:
        if not self.is_local:
            raise ValueError(f"{self.url} is not a local directory")
        return Path(self.path(*parts))

    def _fresh(self, path: str) -> str:
        if not self.is_local:
            self.fs.invalidate_cache(path)  # object-store listings are cached; other writers may have changed them
        return path

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self._fresh(self.path(*parts)))

    def size(self, *parts: str) -> int:
        return int(self.fs.size(self.path(*parts)))

    def listdir(self, *parts: str) -> list[str]:
        """Names (not paths) directly under ``parts``; empty when it does not exist."""
        p = self._fresh(self.path(*parts))
        if not self.fs.exists(p):
            return []
        return sorted(Path(entry).name for entry in self.fs.ls(p, detail=False))

    def open(self, *parts: str, mode: str = "rb") -> BinaryIO:
        return self.fs.open(self.path(*parts), mode)

    def read_bytes(self, *parts: str) -> bytes:
        with self.open(*parts) as f:
            return f.read()

    def read_range(self, parts: tuple[str, ...], offset: int, size: int) -> bytes:
        with self.open(*parts) as f:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise EOFError(f"{self.path(*parts)}: wanted {size} bytes at {offset}, got {len(data)}")
        return data

    def makedirs(self, *parts: str) -> None:
        if self.is_local:
            os.makedirs(self.path(*parts), exist_ok=True)

    def write_bytes(self, parts: tuple[str, ...], data: bytes) -> None:
        """Write a whole file atomically."""
        with self.atomic_writer(*parts) as f:
            f.write(data)

    @contextmanager
    def atomic_writer(self, *parts: str) -> Iterator[BinaryIO]:
        """A file object whose content appears under ``parts`` only once the block exits without error."""
        if self.is_local:
            final = Path(self.path(*parts))
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")
            try:
                with open(tmp, "wb") as f:
                    yield f
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, final)
                _fsync_dir(final.parent)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            with tempfile.NamedTemporaryFile(prefix="omnicurate-", suffix=".part") as spool:
                yield spool
                spool.flush()
                self.fs.put_file(spool.name, self.path(*parts))

    def put_file(self, local: str | Path, *parts: str) -> None:
        """Copy a local file in atomically."""
        with open(local, "rb") as src, self.atomic_writer(*parts) as dst:
            shutil.copyfileobj(src, dst, 4 * 1024 * 1024)

    def remove(self, *parts: str) -> None:
        p = self.path(*parts)
        if self.fs.exists(p):
            self.fs.rm(p, recursive=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def as_location(out: str | Path | DatasetLocation) -> DatasetLocation:
    return out if isinstance(out, DatasetLocation) else DatasetLocation(str(out))
