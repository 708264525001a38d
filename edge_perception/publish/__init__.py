"""What the detector shows people: the annotated debug image and RViz marker geometry (plain
data; `nodes/convert.py` turns it into messages)."""

from edge_perception.publish.draw import CLASS_COLOURS, draw_hazards, to_bgr
from edge_perception.publish.markers import MarkerData, hazard_markers

__all__ = ["CLASS_COLOURS", "MarkerData", "draw_hazards", "hazard_markers", "to_bgr"]
