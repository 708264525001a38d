"""Shared test set-up: an isolated ROS 2 domain per test session, on loopback only."""

from __future__ import annotations

import os
from pathlib import Path

# Before rclpy is imported anywhere: keep DDS discovery on this machine and away from other
# test runs (parallel sessions, CI) by giving each pytest process its own domain.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "datasets" / "road_hazards"


@pytest.fixture
def ros_context():
    """A fresh rclpy context, shut down after the test."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        rclpy.try_shutdown(context=ctx)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "data.yaml").exists():
        pytest.skip("../shared/datasets/road_hazards is not present")
    return SHARED_DATA
