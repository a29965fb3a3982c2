"""Write ``manifest.json`` last and atomically (the commit point of a dataset); read it back strictly."""

from __future__ import annotations

from pathlib import Path

from pipelines.dataset.location import DatasetLocation, as_location
from schemas import from_json, to_json
from schemas.dataset_format import MANIFEST_FILE, Manifest


def write_manifest(out: str | Path | DatasetLocation, manifest: Manifest) -> None:
    """Commit the dataset: the manifest appears whole or not at all."""
    location = as_location(out)
    text = to_json(manifest)
    location.write_bytes((MANIFEST_FILE,), (text + "\n").encode())


def read_manifest(out: str | Path | DatasetLocation) -> Manifest:
    """Read and validate ``manifest.json``; a missing manifest means the dataset was never committed."""
    location = as_location(out)
    if not location.exists(MANIFEST_FILE):
        raise FileNotFoundError(f"{location.path(MANIFEST_FILE)} not found: not a committed omnicurate dataset")
    return from_json(Manifest, location.read_bytes(MANIFEST_FILE))
