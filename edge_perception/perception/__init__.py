"""The detector node's engine without ROS: latest-wins frame slots, the worker thread,
convert-free batching of frames from several cameras, geometry and per-stage statistics."""

from edge_perception.perception.heap import freeze_startup_heap, thaw_heap
from edge_perception.perception.pipeline import (
    Frame,
    FrameResult,
    HazardPipeline,
    scale_intrinsics,
    set_inference_threads,
)
from edge_perception.perception.slots import LatestSlots, SlotWorker
from edge_perception.perception.stats import PipelineStats, RateMeter, Window

__all__ = ["Frame", "FrameResult", "HazardPipeline", "LatestSlots", "PipelineStats",
           "RateMeter", "SlotWorker", "Window", "freeze_startup_heap", "scale_intrinsics",
           "set_inference_threads", "thaw_heap"]
