"""Prefect settings that must be in the environment before ``prefect`` is imported."""

from __future__ import annotations

import os


def prepare_prefect_env() -> None:
    """Make the temporary local server patient on loaded machines and keep it offline.

    Only defaults: anything the user set (PREFECT_API_URL for a real server, ...) wins.
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
