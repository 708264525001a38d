"""Read and write rosbag2 bags (MCAP or sqlite3) with rosbags: raw CDR in, raw CDR out.

The bags are what `ros2 bag` of ROS 2 Kilted writes (format version 9): per-topic message
definitions and RIHS01 type hashes from the typestore, offered QoS profiles in the metadata.
A bag is complete only after `close()` (metadata.yaml, the MCAP summary, the sqlite commit,
which rosbags makes once, at close): a writer killed with SIGKILL leaves at best the MCAP
chunks already flushed (`mcap recover`), and nothing of a sqlite3 bag.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    Nodetype,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys.store import Typestore

from .typestore import ensure_type, make_typestore

__all__ = [
    "BAG_VERSION",
    "STORAGES",
    "DEFAULT_QOS",
    "BagInfo",
    "BagWriter",
    "RawMessage",
    "TopicInfo",
    "UnknownTypeError",
    "adapt_qos",
    "header_stamp_ns",
    "iter_raw",
    "read_info",
]

BAG_VERSION = 9  # rosbag2 metadata version written by Jazzy and Kilted
STORAGES: dict[str, StoragePlugin] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_ZERO = QosTime(0, 0)
# rosbag2's default when a bag has no QoS for a topic: reliable, keep last 10, volatile.
DEFAULT_QOS = Qos(
    history=QosHistory.KEEP_LAST,
    depth=10,
    reliability=QosReliability.RELIABLE,
    durability=QosDurability.VOLATILE,
    deadline=_ZERO,
    lifespan=_ZERO,
    liveliness=QosLiveliness.SYSTEM_DEFAULT,
    liveliness_lease_duration=_ZERO,
    avoid_ros_namespace_conventions=False,
)


class UnknownTypeError(KeyError):
    """A message type with no definition in the typestore or any share folder."""


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    message_count: int
    qos: tuple[Qos, ...]
    type_hash: str


@dataclass(frozen=True)
class BagInfo:
    path: Path
    storage: str
    start_ns: int
    end_ns: int
    message_count: int
    topics: dict[str, TopicInfo]
    custom_data: dict[str, str] = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns if self.message_count else 0


@dataclass(frozen=True)
class RawMessage:
    """One serialized message as stored: topic, type, log (receive) time, CDR bytes."""

    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes


def adapt_qos(offered: Sequence[Qos]) -> Qos:
    """One profile compatible with every offered one, the way rosbag2 chooses it.

    Reliable only if every publisher was reliable, transient-local only if every one was;
    keep-last with the largest offered depth (rosbag2's default depth 10 when none).
    """
    if not offered:
        return DEFAULT_QOS
    reliable = all(q.reliability == QosReliability.RELIABLE for q in offered)
    latched = all(q.durability == QosDurability.TRANSIENT_LOCAL for q in offered)
    depth = max([q.depth for q in offered if q.history == QosHistory.KEEP_LAST] or [10])
    return DEFAULT_QOS._replace(
        depth=max(1, depth),
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
    )


def read_info(path: Path | str) -> BagInfo:
    """Topics, types, counts, QoS and time span of a bag (from its metadata)."""
    with Reader(Path(path)) as reader:
        topics: dict[str, TopicInfo] = {}
        for conn in reader.connections:
            ext = conn.ext
            qos = tuple(ext.offered_qos_profiles) if isinstance(ext, ConnectionExtRosbag2) else ()
            prev = topics.get(conn.topic)
            count = conn.msgcount + (prev.message_count if prev else 0)
            topics[conn.topic] = TopicInfo(conn.topic, conn.msgtype, count, qos, conn.digest)
        meta = reader.storage.metadata
        mcap = any(Path(path).glob("*.mcap")) or str(path).endswith(".mcap")
        return BagInfo(
            path=Path(path),
            storage="mcap" if mcap else "sqlite3",
            start_ns=reader.start_time if reader.message_count else 0,
            end_ns=reader.end_time - 1 if reader.message_count else 0,
            message_count=reader.message_count,
            topics=topics,
            custom_data=dict(meta.custom or {}),
        )


def iter_raw(
    path: Path | str,
    topics: Iterable[str] | None = None,
    start_ns: int | None = None,
    stop_ns: int | None = None,
) -> Iterator[RawMessage]:
    """Messages of `topics` (all when None) in log-time order, in [start_ns, stop_ns)."""
    wanted = None if topics is None else set(topics)
    with Reader(Path(path)) as reader:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        for conn, t_ns, data in reader.messages(connections=conns, start=start_ns, stop=stop_ns):
            yield RawMessage(conn.topic, conn.msgtype, t_ns, bytes(data))


def header_stamp_ns(typestore: Typestore, msgtype: str, data: bytes) -> int | None:
    """`header.stamp` in ns of a serialized message whose first field is a std_msgs Header."""
    fields = typestore.fielddefs.get(msgtype, ((), ()))[1]
    if not fields or fields[0][1] != (Nodetype.NAME, "std_msgs/msg/Header"):
        return None
    msg = typestore.deserialize_cdr(data, msgtype)
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class BagWriter:
    """A rosbag2 bag being written; a context manager; every method is thread-safe.

    All storage I/O runs on one private thread (sqlite3 connections are bound to the thread
    that made them, and a subscriber callback should not wait for the disk): `write` only
    queues the bytes, in call order; `close` drains the queue, finalises the bag and
    re-raises the first write error, if any. Topics are added with their type and offered
    QoS; a type must be known to the typestore or defined by a `.msg` file in a share
    folder (see `typestore.py`), else UnknownTypeError.
    """

    def __init__(
        self,
        path: Path | str,
        storage: str = "mcap",
        typestore: Typestore | None = None,
        custom_data: Mapping[str, str] | None = None,
    ) -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, not {storage!r}")
        self.path = Path(path)
        self.storage = storage
        self.typestore = make_typestore() if typestore is None else typestore
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=STORAGES[storage])
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(key, value)
        self._lock = threading.Lock()
        self._io: ThreadPoolExecutor | None = None
        self._connections: dict[str, Connection] = {}
        self._error: BaseException | None = None
        self.counts: dict[str, int] = {}

    def open(self) -> BagWriter:
        with self._lock:
            if self._io is None:
                io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bag-writer")
                io.submit(self._writer.open).result()
                self._io = io
        return self

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = ()) -> None:
        if not ensure_type(self.typestore, msgtype):
            raise UnknownTypeError(f"no message definition found for {msgtype} ({topic})")
        with self._lock:
            if self._io is None:
                raise ValueError(f"{self.path} is not open")
            if topic in self._connections:
                raise ValueError(f"topic {topic} was already added")
            self._connections[topic] = self._io.submit(
                self._writer.add_connection,
                topic, msgtype, typestore=self.typestore, offered_qos_profiles=list(qos),
            ).result()  # fmt: skip
            self.counts[topic] = 0

    @property
    def topics(self) -> list[str]:
        return list(self._connections)

    def _write(self, connection: Connection, log_time_ns: int, data: bytes | memoryview) -> None:
        if self._error is None:
            try:
                self._writer.write(connection, log_time_ns, data)
            except Exception as exc:  # kept for close(); later writes are dropped
                self._error = exc

    def write(self, topic: str, log_time_ns: int, data: bytes | memoryview) -> None:
        """Queue one serialized message; dropped silently once the bag is closed."""
        with self._lock:
            if self._io is None:
                return  # a late callback after close: the bag is already complete
            self._io.submit(self._write, self._connections[topic], log_time_ns, bytes(data))
            self.counts[topic] += 1

    def write_msg(self, topic: str, log_time_ns: int, msg: object) -> None:
        """Serialize a rosbags message object of the topic's type and queue it."""
        msgtype = self._connections[topic].msgtype
        self.write(topic, log_time_ns, self.typestore.serialize_cdr(msg, msgtype))

    def close(self) -> None:
        """Drain the queue, write the index and metadata.yaml; safe to call twice."""
        with self._lock:
            io, self._io = self._io, None
        if io is None:
            return
        try:
            io.submit(self._writer.close).result()
        finally:
            io.shutdown(wait=True)
        if self._error is not None:
            raise self._error

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Close (not abort) on errors too: what was written stays a readable bag.
        self.close()
