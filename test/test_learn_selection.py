"""Frame selection: uncertainty band, lost tracks, class-balanced random sample, on demand."""

from __future__ import annotations

from edge_perception.learn.sample import Reason, SampleDetection
from edge_perception.learn.selection import Decision, SelectionConfig, Selector, iou


def det(score: float, box=(100, 100, 160, 130), cls: int = 0) -> SampleDetection:
    return SampleDetection(cls, ["pothole", "speed_bump"][cls], score, box)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 15, 10)) - 1 / 3) < 1e-9


def test_hard_example_in_band_only():
    sel = Selector(SelectionConfig(band=(0.3, 0.6), random_rate=0.0, min_interval_s=0.0))
    assert sel.update(0.0, [det(0.9)]) is None
    assert sel.update(1.0, [det(0.1, box=(300, 10, 320, 30))]) is None
    assert sel.update(2.0, [det(0.45, box=(10, 10, 40, 40))]) == Decision(Reason.HARD_EXAMPLE, 1)


def test_lost_track_but_not_when_leaving_the_view():
    cfg = SelectionConfig(band=(0.0, 0.0), random_rate=0.0, min_interval_s=0.0, min_hits=3)
    sel = Selector(cfg, image_size=(448, 256))
    for t in range(3):  # a pothole tracked over 3 frames, drifting a little
        assert sel.update(t, [det(0.9, box=(100 + 2 * t, 100 + 3 * t, 160, 130 + 3 * t))]) is None
    assert sel.update(3, []) == Decision(Reason.LOST_TRACK, 2)
    # a track that was only seen once is not "lost"
    sel.update(4, [det(0.9)])
    assert sel.update(5, []) is None
    # a track whose last box touches the image bottom just drove out of view
    for t in range(3):
        sel.update(6 + t, [det(0.9, box=(200, 180 + 10 * t, 260, 240 + 5 * t))])
    assert sel.update(9, []) is None


def test_on_demand_beats_rate_limit():
    sel = Selector(SelectionConfig(band=(0.3, 0.6), random_rate=0.0, min_interval_s=10.0))
    assert sel.update(0.0, [det(0.5)]).reason is Reason.HARD_EXAMPLE
    assert sel.update(1.0, [det(0.5)]) is None  # rate-limited
    sel.request_capture()
    assert sel.update(1.5, [det(0.99)]) == Decision(Reason.ON_DEMAND, 3)
    assert sel.update(2.0, [det(0.99)]) is None  # one capture per request


def test_random_sample_is_seeded_and_class_balanced():
    def run(seed: int) -> tuple[list[int], dict[int, int]]:
        sel = Selector(SelectionConfig(band=(0.0, 0.0), random_rate=0.05, min_interval_s=0.0,
                                       seed=seed))
        kept = []
        for t in range(4000):
            # potholes are 9x more common than speed bumps; the box jumps so nothing tracks
            cls = 1 if t % 10 == 0 else 0
            box = (10 + (t % 7) * 60, 10, 40 + (t % 7) * 60, 40)
            if sel.update(float(t), [det(0.95, box=box, cls=cls)]):
                kept.append(t)
        return kept, sel.kept_by_class

    a, by_class = run(3)
    assert a == run(3)[0] and a != run(4)[0]
    assert 40 < len(a) < 400
    # balanced: the rare class gets a share of the sample far above its 10% of the frames
    assert by_class[1] / (by_class[0] + by_class[1]) > 0.3
