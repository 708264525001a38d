"""Library tests for edge_perception.replay (rosbags only, no rclpy): bags, images, sync."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import WriterError

from edge_perception.replay.bags import (
    DEFAULT_QOS,
    BagWriter,
    UnknownTypeError,
    adapt_qos,
    header_stamp_ns,
    iter_raw,
    read_info,
)
from edge_perception.replay.images import (
    DEFAULT_START_NS,
    array_to_image_msg,
    camera_info_topic,
    image_msg_to_array,
    iter_images,
    write_image_bag,
)
from edge_perception.replay.sync import Pacer, StampWaiter
from edge_perception.replay.typestore import PROJECT_TYPES, find_msg_file, make_typestore

REPO = Path(__file__).resolve().parents[1]
SAMPLE_IMAGES = sorted((REPO / "data" / "sample").rglob("*.jpg"))[:6]
K = [500.0, 0.0, 32.0, 0.0, 500.0, 24.0, 0.0, 0.0, 1.0]


def _frames(n: int = 6, shape: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(n)]


def test_library_does_not_import_rclpy() -> None:
    code = (
        "import sys\n"
        "import edge_perception.replay.bags, edge_perception.replay.images\n"
        "import edge_perception.replay.sync, edge_perception.replay.typestore\n"
        "bad = [m for m in sys.modules if m.startswith('rclpy') or m.endswith('_msgs')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_write_image_bag_reads_back_identically(tmp_path: Path, storage: str) -> None:
    frames = _frames()
    bag = write_image_bag(frames, tmp_path / "bag", rate_hz=10, storage=storage,
                          frame_id="cam", camera_info={"k": K})  # fmt: skip
    info = read_info(bag)
    assert info.storage == storage
    assert info.message_count == 2 * len(frames)
    image = info.topics["/camera/image_raw"]
    assert image.msgtype == "sensor_msgs/msg/Image" and image.message_count == len(frames)
    assert image.qos == (DEFAULT_QOS,)
    assert image.type_hash.startswith("RIHS01_")
    assert info.topics[camera_info_topic("/camera/image_raw")].message_count == len(frames)
    assert info.start_ns == DEFAULT_START_NS
    assert info.duration_ns == (len(frames) - 1) * 100_000_000

    got = list(iter_images(bag))
    assert [f.index for f in got] == list(range(len(frames)))
    assert [f.stamp_ns for f in got] == [DEFAULT_START_NS + i * 100_000_000 for i in range(6)]
    assert all(f.log_time_ns == f.stamp_ns and f.frame_id == "cam" for f in got)
    for frame, original in zip(got, frames, strict=True):
        assert frame.encoding == "bgr8" and frame.image.dtype == np.uint8
        np.testing.assert_array_equal(frame.image, original)

    # camera_info comes first at each stamp, and carries the intrinsics
    raw = list(iter_raw(bag))
    assert [m.topic for m in raw[:2]] == ["/camera/camera_info", "/camera/image_raw"]
    ts = make_typestore(())
    ci = ts.deserialize_cdr(raw[0].data, raw[0].msgtype)
    np.testing.assert_allclose(ci.k, K)
    assert (ci.width, ci.height) == (64, 48)


def test_write_image_bag_from_files(tmp_path: Path) -> None:
    paths = []
    for i, frame in enumerate(_frames(3)):
        paths.append(tmp_path / f"{i:06d}.png")
        cv2.imwrite(str(paths[-1]), frame)
    bag = write_image_bag(paths, tmp_path / "bag", rate_hz=5, topic="/cam/image")
    got = list(iter_images(bag, "/cam/image"))
    assert len(got) == 3 and got[2].stamp_ns - got[0].stamp_ns == 400_000_000
    for frame, path in zip(got, paths, strict=True):
        np.testing.assert_array_equal(frame.image, cv2.imread(str(path)))
    with pytest.raises(FileNotFoundError):
        write_image_bag([tmp_path / "missing.png"], tmp_path / "bag2")


@pytest.mark.skipif(not SAMPLE_IMAGES, reason="no committed sample images")
def test_write_image_bag_real_frames(tmp_path: Path) -> None:
    bag = write_image_bag(SAMPLE_IMAGES, tmp_path / "bag")
    for frame, path in zip(iter_images(bag), SAMPLE_IMAGES, strict=True):
        np.testing.assert_array_equal(frame.image, cv2.imread(str(path)))


def test_writer_refuses_to_overwrite(tmp_path: Path) -> None:
    write_image_bag(_frames(1), tmp_path / "bag")
    with pytest.raises(WriterError):
        write_image_bag(_frames(1), tmp_path / "bag")


@pytest.mark.parametrize(
    ("encoding", "dtype", "shape"),
    [("mono8", np.uint8, (5, 7)), ("rgb8", np.uint8, (5, 7, 3)), ("bgra8", np.uint8, (5, 7, 4)),
     ("mono16", np.uint16, (5, 7)), ("32FC1", np.float32, (5, 7))],
)  # fmt: skip
def test_image_encodings_round_trip(encoding: str, dtype: type, shape: tuple) -> None:
    ts = make_typestore(())
    image = (np.arange(np.prod(shape)) * 37 % 251).astype(dtype).reshape(shape)
    msg = array_to_image_msg(ts, image, 123, "f", encoding)
    back = ts.deserialize_cdr(ts.serialize_cdr(msg, "sensor_msgs/msg/Image"),
                              "sensor_msgs/msg/Image")  # fmt: skip
    array, enc = image_msg_to_array(back)
    assert enc == encoding
    np.testing.assert_array_equal(array, image)


def test_image_with_row_padding_and_big_endian() -> None:
    ts = make_typestore(())
    image = np.arange(12, dtype=">u2").reshape(3, 4)
    rows = np.zeros((3, 12), dtype=np.uint8)  # step 12 > 8 bytes of pixels
    rows[:, :8] = image.view(np.uint8).reshape(3, 8)
    msg = array_to_image_msg(ts, np.zeros((3, 4), np.uint16), 0, "f", "mono16")
    msg.is_bigendian, msg.step, msg.data = 1, 12, rows.reshape(-1)
    array, _ = image_msg_to_array(msg)
    np.testing.assert_array_equal(array, image.astype(np.uint16))
    msg.encoding = "yuv422"
    with pytest.raises(ValueError):
        image_msg_to_array(msg)


def test_compressed_images_decode(tmp_path: Path) -> None:
    ts = make_typestore(())
    frame = _frames(1)[0]
    ok, png = cv2.imencode(".png", frame)
    assert ok
    t = ts.types
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=3, nanosec=5),
                                      frame_id="cam")  # fmt: skip
    msg = t["sensor_msgs/msg/CompressedImage"](header=header, format="png", data=png.reshape(-1))
    with BagWriter(tmp_path / "bag") as bag:
        bag.add_topic("/c", "sensor_msgs/msg/CompressedImage")
        bag.write_msg("/c", 10, msg)
    (got,) = list(iter_images(tmp_path / "bag"))
    assert got.stamp_ns == 3_000_000_005 and got.encoding == "bgr8"
    np.testing.assert_array_equal(got.image, frame)


def test_project_messages_registered_from_msg_files(tmp_path: Path) -> None:
    ts = make_typestore()
    for msgtype in PROJECT_TYPES:
        assert msgtype in ts.fielddefs
        assert find_msg_file(msgtype) is not None
    t = ts.types
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=7, nanosec=9),
                                      frame_id="base_link")  # fmt: skip
    hazard = t["edge_perception_msgs/msg/RoadHazard"](
        class_id=1, class_name="speed_bump", score=0.5, x_min=1, y_min=2, x_max=3, y_max=4,
        position_valid=True, position=t["geometry_msgs/msg/Point"](x=5.0, y=0.5, z=0.0),
        range_m=5.0, bearing_rad=0.1, width_m=2.0, range_sigma_m=0.2, lateral_sigma_m=0.1,
    )  # fmt: skip
    arr = t["edge_perception_msgs/msg/RoadHazardArray"](
        header=header, camera_frame_id="cam", image_width=640, image_height=480,
        hazards=[hazard], model_id="m@1", latency_s=0.01,
    )  # fmt: skip
    with BagWriter(tmp_path / "bag", storage="sqlite3", typestore=ts) as bag:
        bag.add_topic("/road_hazards", "edge_perception_msgs/msg/RoadHazardArray")
        bag.write_msg("/road_hazards", 1, arr)
    (raw,) = list(iter_raw(tmp_path / "bag"))
    assert header_stamp_ns(ts, raw.msgtype, raw.data) == 7_000_000_009
    back = ts.deserialize_cdr(raw.data, raw.msgtype)
    assert back.hazards[0].class_name == "speed_bump" and back.hazards[0].position.y == 0.5
    # the bag carries the full definition (dependencies included) for Foxglove / ros2 bag
    with Reader(tmp_path / "bag") as reader:
        msgdef = reader.connections[0].msgdef.data
    assert "MSG: edge_perception_msgs/RoadHazard" in msgdef
    assert "MSG: geometry_msgs/Point" in msgdef


def test_unknown_type_is_refused(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "bag") as bag, pytest.raises(UnknownTypeError):
        bag.add_topic("/x", "no_such_msgs/msg/Thing")
    with pytest.raises(ValueError):
        BagWriter(tmp_path / "bag2", storage="rosbag1")


def test_iter_raw_time_window(tmp_path: Path) -> None:
    bag = write_image_bag(_frames(5, (4, 4)), tmp_path / "bag", rate_hz=10)
    start = DEFAULT_START_NS + 200_000_000
    got = [m.log_time_ns for m in iter_raw(bag, start_ns=start)]
    assert got == [start, start + 100_000_000, start + 200_000_000]
    assert list(iter_raw(bag, topics=["/nope"])) == []


def test_adapt_qos_like_rosbag2() -> None:
    best = DEFAULT_QOS._replace(reliability=QosReliability.BEST_EFFORT, depth=3)
    latched = DEFAULT_QOS._replace(durability=QosDurability.TRANSIENT_LOCAL, depth=1)
    assert adapt_qos([]) == DEFAULT_QOS
    assert adapt_qos([DEFAULT_QOS, best]).reliability == QosReliability.BEST_EFFORT
    assert adapt_qos([DEFAULT_QOS, best]).depth == 10
    assert adapt_qos([latched]).durability == QosDurability.TRANSIENT_LOCAL
    assert adapt_qos([latched, DEFAULT_QOS]).durability == QosDurability.VOLATILE


def test_stamp_waiter_keeps_early_answers_and_times_out() -> None:
    waiter = StampWaiter(keep=3)
    waiter.notify(1)
    assert waiter.wait(1, 0.0)  # answered before anyone waited
    t0 = time.monotonic()
    assert not waiter.wait(2, 0.05)
    assert time.monotonic() - t0 >= 0.04
    threading.Timer(0.05, waiter.notify, args=(2,)).start()
    assert waiter.wait(2, 2.0)
    waiter.discard(2)
    assert not waiter.seen(2)
    for s in range(10, 15):
        waiter.notify(s)
    assert not waiter.seen(1) and waiter.seen(14)  # bounded memory
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    t0 = time.monotonic()
    assert not waiter.wait(99, 10.0, stop)  # a stop (Ctrl-C) ends the wait early
    assert time.monotonic() - t0 < 1.0


def test_pacer_maps_bag_time_at_rate() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    pacer = Pacer(rate=2.0, clock=lambda: now[0], sleep=sleep)
    pacer.anchor(1_000_000_000)
    assert pacer.due(2_000_000_000) == pytest.approx(100.5)
    ticks: list[int] = []
    late = pacer.sleep_until(2_000_000_000, ticks.append, period_s=0.1)
    assert late == pytest.approx(0.0) and now[0] == pytest.approx(100.5)
    assert ticks[:5] == [1_000_000_000 + i * 200_000_000 for i in range(5)]
    assert ticks == sorted(ticks) and ticks[-1] <= 2_000_000_000
    with pytest.raises(ValueError):
        Pacer(rate=0)


def test_mcap_readable_by_independent_ros2_decoder(tmp_path: Path) -> None:
    """What Foxglove does: read the MCAP summary and decode with the embedded definitions."""
    mcap_reader = pytest.importorskip("mcap.reader")
    decoder = pytest.importorskip("mcap_ros2.decoder")
    frames = _frames(4)
    bag = write_image_bag(frames, tmp_path / "bag", camera_info={"k": K})
    (path,) = bag.glob("*.mcap")
    with path.open("rb") as f:
        reader = mcap_reader.make_reader(f, decoder_factories=[decoder.DecoderFactory()])
        summary = reader.get_summary()
        assert summary is not None and summary.statistics.message_count == 8
        schemas = {s.name: s for s in summary.schemas.values()}
        assert schemas["sensor_msgs/msg/Image"].encoding == "ros2msg"
        assert reader.get_header().profile == "ros2"
        got = [(ch.topic, msg) for _, ch, _, msg in reader.iter_decoded_messages(
            topics=["/camera/image_raw"])]  # fmt: skip
        metadata = {m.name: m.metadata for m in reader.iter_metadata()}
    assert len(got) == 4
    for (_, msg), frame in zip(got, frames, strict=True):
        assert (msg.height, msg.width, msg.encoding) == (48, 64, "bgr8")
        np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), np.uint8), frame.reshape(-1))
    assert "rosbag2" in metadata  # rosbag2's serialized_metadata record


def test_sqlite3_schema_is_rosbag2_v9(tmp_path: Path) -> None:
    import sqlite3

    bag = write_image_bag(_frames(2), tmp_path / "bag", storage="sqlite3")
    (db,) = bag.glob("*.db3")
    con = sqlite3.connect(db)
    try:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
        assert {"topics", "messages", "metadata", "schema", "message_definitions"} <= tables
        cols = {r[1] for r in con.execute("pragma table_info(topics)")}
        assert {"offered_qos_profiles", "type_description_hash"} <= cols
        (schema_version,) = con.execute("select schema_version from schema").fetchone()
        (encoding,) = con.execute(
            "select encoding from message_definitions where topic_type='sensor_msgs/msg/Image'"
        ).fetchone()
        (count,) = con.execute("select count(*) from messages").fetchone()
    finally:
        con.close()
    assert schema_version >= 4 and encoding == "ros2msg" and count == 2
