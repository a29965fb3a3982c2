"""The dataset format on disk or in a bucket: shards, indexes, catalog, manifest, validation, review rendering."""
