"""Prefect flows, deployments and the omnicurate CLI."""
