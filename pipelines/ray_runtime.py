"""Connect to Ray once per process: an existing cluster by address, or a local one."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> dict:
    """Initialise Ray unless it already is; returns the cluster's resources.

    ``address`` (or ``RAY_ADDRESS``) joins an existing cluster; otherwise a local Ray starts
    with ``num_cpus`` (default: all cores).
    """
    import ray

    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        kwargs: dict = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count(), **kwargs)
        log.info("ray connected: %s", ray.cluster_resources())
    return ray.cluster_resources()


def is_transient(exc: BaseException | None) -> bool:
    """Failures a second try can fix: I/O time-outs, a lost Ray worker, actor, node or object."""
    import ray.exceptions

    return isinstance(exc, (ConnectionError, TimeoutError, ray.exceptions.RayActorError,
                            ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                            ray.exceptions.LocalRayletDiedError, ray.exceptions.ObjectLostError))
