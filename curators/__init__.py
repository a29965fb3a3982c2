"""Per-item operators, pure and testable alone; no Ray, no Prefect."""
