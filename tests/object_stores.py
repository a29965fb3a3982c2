"""Object stores on 127.0.0.1 that fsspec's ``s3://`` (moto's server) and ``gs://`` (a GCS emulator) talk to for the
length of a block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import fsspec
from ports import free_port


@contextmanager
def s3_emulator(*buckets: str) -> Iterator[str]:
    """Serve moto's S3 API with ``buckets`` made; yields its endpoint URL. s3fs is pointed at it through fsspec's
    config, as ``FSSPEC_S3_ENDPOINT_URL`` and the AWS key variables point a fresh process."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)
    saved = dict(fsspec.config.conf)
    fsspec.config.conf["s3"] = {"endpoint_url": endpoint, "key": "testing", "secret": "testing",
                                "skip_instance_cache": True}
    try:
        yield endpoint
    finally:
        fsspec.config.conf.clear()
        fsspec.config.conf.update(saved)
        server.stop()


@contextmanager
def gcs_emulator(*buckets: str) -> Iterator[str]:
    """Serve an in-memory GCS JSON API with ``buckets`` made; yields its endpoint URL.

    gcsfs is pointed at it through fsspec's config (``endpoint_url`` and anonymous ``token``), the
    same settings ``STORAGE_EMULATOR_HOST`` and ``FSSPEC_GCS_TOKEN=anon`` give a fresh process. The
    emulator has only the JSON API, so ``gs://`` is served by gcsfs' plain filesystem rather than its
    gRPC bucket-layout probing one (``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` in a fresh process).
    """
    from fsspec.registry import _registry
    from gcp_storage_emulator.server import create_server
    from gcsfs.core import GCSFileSystem

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved_conf = dict(fsspec.config.conf)
    saved_classes = {p: _registry.get(p) for p in ("gs", "gcs")}
    for protocol in ("gs", "gcs"):
        fsspec.register_implementation(protocol, GCSFileSystem, clobber=True)
    fsspec.config.conf["gcs"] = {"endpoint_url": endpoint, "token": "anon", "skip_instance_cache": True}
    try:
        fs = fsspec.filesystem("gs")
        for bucket in buckets:
            fs.mkdir(bucket)
        yield endpoint
    finally:
        fsspec.config.conf.clear()
        fsspec.config.conf.update(saved_conf)
        for protocol, cls in saved_classes.items():
            if cls is None:
                _registry.pop(protocol, None)
            else:
                _registry[protocol] = cls
        server.stop()
