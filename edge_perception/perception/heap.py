"""Keep the garbage collector's full passes short while frames flow.

After start-up a detector process tracks about 128 000 container objects (rclpy, NumPy,
onnxruntime, message classes). A full (generation-2) pass of CPython's cyclic collector walks
all of them holding the GIL: 68 ms for the one that fell inside a 30 s, 30 Hz `bench pipeline`
run on the 2-core build VM, a stall in front of the frames in flight and a p99 latency spike.
`freeze_startup_heap` collects once and moves the survivors into the permanent generation
(`gc.freeze`), so later passes walk only what was allocated since. Frozen objects are still
freed by reference counting; `thaw_heap` puts them back under the collector when the model is
released, so a dropped model's reference cycles cannot outlive it.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap", "thaw_heap"]


def freeze_startup_heap() -> int:
    """Collect, then exempt every surviving object from later passes; returns how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def thaw_heap() -> None:
    """Undo `freeze_startup_heap` (the objects join the oldest generation again)."""
    gc.unfreeze()
