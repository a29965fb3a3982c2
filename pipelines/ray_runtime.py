"""Connect to Ray once per process: an existing cluster by address, or a local one."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

IDLE_WORKER_KEEP_MS = 30_000
"""How long a local Ray keeps an idle worker beyond one per free CPU. With Ray's default (1 s) a visual-facts
worker ended whenever the ASR kept the next task waiting a second (the actors and running tasks hold the CPUs), and
every new worker costs 1-2 CPU-s to start: on 200 videos, 15 workers took turns at the visual tasks; with this, 2.
A cluster's nodes get the same from ``RAY_idle_worker_killing_time_threshold_ms`` where ``ray start`` runs."""


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
            ray.init(num_cpus=num_cpus or os.cpu_count(),
                     _system_config={"idle_worker_killing_time_threshold_ms": IDLE_WORKER_KEEP_MS}, **kwargs)
        log.info("ray connected: %s", ray.cluster_resources())
    return ray.cluster_resources()


def is_transient(exc: BaseException | None) -> bool:
    """Failures a second try can fix: I/O time-outs, a lost Ray worker, actor, node or object."""
    import ray.exceptions

    return isinstance(exc, (ConnectionError, TimeoutError, ray.exceptions.RayActorError,
                            ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                            ray.exceptions.LocalRayletDiedError, ray.exceptions.ObjectLostError))
