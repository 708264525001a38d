"""detector_node with two worker threads over a real DDS graph (its own module, so that the
single-worker node of test_detector_node is gone and cannot answer these frames too)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from detector_helpers import MOUNT, make_model, sim_intrinsics
from test_detector_node import active_graph

from edge_perception.sim import Scenario


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model(tmp_path_factory.mktemp("model") / "random.pt")


def test_two_workers_share_the_model_and_publish_in_arrival_order(model: Path) -> None:
    """A burst on one camera with worker_threads=2: both workers run (one model, two
    preprocessing buffers), each camera's hazards still go out oldest to newest with no frame
    twice, the newest frame is served, and every frame taken is either published or counted
    as dropped late."""
    road = Scenario().renderer(sim_intrinsics(), MOUNT, seed=2).render(Scenario().hazards,
                                                                       0.0).image
    with active_graph(model, worker_threads=2) as g:
        node = g.node
        assert node._pipeline is not None and node._pipeline.detector.concurrency == 2
        names = {t.name for t in threading.enumerate()}
        assert {"detector_node-worker-0", "detector_node-worker-1"} <= names
        stamps, served = g.burst(road, 60, 0.01)
        assert served == sorted(set(served))
        received, skipped = node.slots.totals()  # best effort: DDS may drop a few
        assert 0 < received <= len(stamps)
        assert len(served) + node.stats.late == received - skipped
        assert np.isfinite(node.stats.latency.percentile(99))
