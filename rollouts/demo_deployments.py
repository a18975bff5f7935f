"""Demo deployment history (seed_demo). Idempotent."""

from typing import IO


def seed_deployments(out: IO[str]) -> None:
    return None
