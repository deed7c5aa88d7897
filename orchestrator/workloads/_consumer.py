"""A consumer of the `messages` workload: a program of its own, run as a separate OS process
(so a fault can SIGKILL or SIGSTOP it for real). Not a plug-in: the leading underscore keeps
the workloads folder's discovery away. It imports only the standard library and speaks RESP2
itself (`Resp`), so it starts in some 70 ms (`python -I -S`) where importing redis-py took 0.3 s
idle and over 2 s on a loaded 2-core host: a restart's outage is Redis', not Python's imports.

    python -I -S _consumer.py --name c1 --transport stream --key messages --group workers \
        --out c1-1.jsonl --parent 1234 [--min-idle-ms 1000] [--batch 100] [--work-ms 0]

Where the lab is comes from the environment the kind gives a client program (`client_env`):
LAB_SENTINELS and LAB_MASTER_NAME (ask the Sentinels), else LAB_NODES (ask each node's ROLE);
LAB_ADDRESS_MAP turns the lab-network addresses servers announce into 127.0.0.1 ports. Every
connection is checked with ROLE before use, and after any error the consumer finds the master
again, so it follows a failover.

It appends one JSON line per message it receives, written with one write(2) per batch as soon
as the batch arrives (the kernel keeps it even if the process is killed the next instant):
  {"n": 17, "t": 8123.456789, "id": "1700000000000-0", "claimed": 0}
`t` is CLOCK_MONOTONIC (system-wide on Linux: the tool's time.monotonic()), `id` the stream
entry ID ("" for Pub/Sub), `claimed` 1 for an entry taken over from the pending list with
XAUTOCLAIM. Its own events are lines with "ev": start, connected (port), lost (error),
claimed (count, deleted), stop.

Streams: XREADGROUP GROUP <group> <name> ... >, record, `--work-ms` of "processing", then
XACK; XAUTOCLAIM <min-idle> at start and every half min-idle, so pending entries of a dead
consumer (or of its own previous life) are processed again. Pub/Sub: SUBSCRIBE, record what
arrives, `--work-ms` per batch.

It never outlives the tool: PR_SET_PDEATHSIG delivers SIGKILL when the process that started it
ends, and it exits if its parent is no longer the `--parent` it was given. SIGTERM makes it
finish the batch in hand (acknowledged) and exit.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import signal
import socket
import sys
import time

HOST = "127.0.0.1"
CONNECT_TIMEOUT_S = 0.2
SOCKET_TIMEOUT_S = 2.0
RETRY_PAUSE_S = 0.05
BLOCK_MS = 100             # XREADGROUP BLOCK / Pub/Sub poll: how soon a stop or a dead parent is noticed
READ_CHUNK = 65536
PR_SET_PDEATHSIG = 1


class ReplyError(Exception):
    """An error reply from the server (its first word is the code: NOGROUP, READONLY ...)."""


ERRORS = (OSError, ReplyError)     # socket errors (refused, reset, timeout, closed) and error replies


_stopping = False


def _on_sigterm(signum, frame) -> None:
    global _stopping
    _stopping = True


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when the process that started it ends (Linux); and exit now if
    that has already happened."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass            # not Linux: the getppid() check in the loops still ends it
    if os.getppid() != parent:
        sys.exit(0)


class Lab:
    """Where the master is, from the kind's client environment."""

    def __init__(self, env):
        self.sentinels = _addresses(env.get("LAB_SENTINELS", ""))
        self.master_name = env.get("LAB_MASTER_NAME", "mymaster")
        self.nodes = _addresses(env.get("LAB_NODES", ""))
        self.remap = {}
        for pair in filter(None, env.get("LAB_ADDRESS_MAP", "").split(",")):
            inner, _, outer = pair.partition("=")
            self.remap[inner] = _address(outer)

    def candidates(self) -> list[tuple[str, int]]:
        """Host addresses that may be the master, best first."""
        if self.sentinels:
            for sentinel in self.sentinels:
                try:
                    reply = ask(sentinel, "SENTINEL", "get-master-addr-by-name", self.master_name)
                except ERRORS:
                    continue
                if reply:
                    announced = f"{_text(reply[0])}:{_text(reply[1])}"
                    return [self.remap.get(announced, _address(announced))]
            return []
        masters = []
        for node in self.nodes:
            try:
                role = ask(node, "ROLE")
            except ERRORS:
                continue
            if _text(role[0]) == "master":
                masters.append((len(role[2]), node))
        return [node for _, node in sorted(masters, key=lambda m: -m[0])]


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _addresses(text: str) -> list[tuple[str, int]]:
    return [_address(part) for part in text.split(",") if part]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Resp:
    """One RESP2 connection: send a command, read one reply (simple string and bulk as bytes,
    integer as int, array as list, null as None; an error reply raises ReplyError). Socket
    errors propagate: OSError (refused, reset, timeout), ConnectionError when the server closes."""

    def __init__(self, sock: socket.socket, port: int):
        self.sock, self.port = sock, port
        self.buf = bytearray()

    def send(self, *args) -> None:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))

    def command(self, *args):
        self.send(*args)
        return self.read()

    def readable(self, timeout: float) -> bool:
        """True when a reply (or part of one) is there to read, waiting at most `timeout` s."""
        return bool(self.buf) or bool(select.select([self.sock], [], [], timeout)[0])

    def read(self):
        line = self._line()
        marker, rest = line[:1], line[1:]
        if marker == b"+":
            return rest
        if marker == b"-":
            raise ReplyError(rest.decode(errors="replace"))
        if marker == b":":
            return int(rest)
        if marker == b"$":
            return None if int(rest) < 0 else self._exactly(int(rest))
        if marker == b"*":
            return None if int(rest) < 0 else [self.read() for _ in range(int(rest))]
        raise ConnectionError(f"protocol error: unexpected {bytes(line[:20])!r}")

    def _fill(self) -> None:
        chunk = self.sock.recv(READ_CHUNK)
        if not chunk:
            raise ConnectionError("connection closed by server")
        self.buf += chunk

    def _line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[:end + 2]
                return line
            self._fill()

    def _exactly(self, size: int) -> bytes:
        while len(self.buf) < size + 2:
            self._fill()
        data = bytes(self.buf[:size])
        del self.buf[:size + 2]
        return data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def connection(address: tuple[str, int]) -> Resp:
    """A connection with bounded connect and read timeouts."""
    sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT_S)
    sock.settimeout(SOCKET_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Resp(sock, address[1])


def ask(address: tuple[str, int], *args):
    conn = connection(address)
    try:
        return conn.command(*args)
    finally:
        conn.close()


class NotMaster(ConnectionError):
    """The node named as master says otherwise (a failover in progress)."""


def connect_to_master(lab: Lab) -> Resp:
    for address in lab.candidates():
        try:
            conn = connection(address)
        except ERRORS:
            continue
        try:
            if _text(conn.command("ROLE")[0]) == "master":
                return conn
        except ERRORS:
            pass
        conn.close()
    raise NotMaster("no node answers as master")


class Recorder:
    """Appends JSON lines to the output file, one write(2) per call."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def event(self, ev: str, **fields) -> None:
        self.write([json.dumps({"ev": ev, "t": round(time.monotonic(), 6), **fields})])

    def messages(self, received: list[tuple[int, float, str]], claimed: bool) -> None:
        flag = 1 if claimed else 0
        self.write([f'{{"n":{n},"t":{t:.6f},"id":"{entry}","claimed":{flag}}}' for n, t, entry in received])

    def write(self, lines: list[str]) -> None:
        if lines:
            data = ("\n".join(lines) + "\n").encode()
            while data:
                data = data[os.write(self.fd, data):]


class Consumer:
    def __init__(self, args, lab: Lab, recorder: Recorder):
        self.args, self.lab, self.out = args, lab, recorder
        self.work_s = args.work_ms / 1000.0
        self.next_claim = 0.0

    def should_stop(self) -> bool:
        return _stopping or os.getppid() != self.args.parent

    def run(self) -> None:
        connected = False
        while not self.should_stop():
            try:
                conn = connect_to_master(self.lab)
            except ERRORS:
                time.sleep(RETRY_PAUSE_S)
                continue
            try:
                if self.args.transport == "stream":
                    self.consume_stream(conn)
                else:
                    self.consume_channel(conn)
            except ERRORS as exc:
                self.out.event("lost", error=_kind_of(exc))
                time.sleep(RETRY_PAUSE_S)
            finally:
                conn.close()
            connected = True
        self.out.event("stop", connected=connected)

    # ------------------------------------------------------------ Pub/Sub

    def consume_channel(self, conn: Resp) -> None:
        conn.command("SUBSCRIBE", self.args.key)   # [subscribe, channel, 1]: in place from now on
        self.out.event("connected", port=conn.port, subscribed=self.args.key)
        while not self.should_stop():
            if not conn.readable(BLOCK_MS / 1000.0):
                continue
            received = []
            try:
                while len(received) < self.args.batch and (not received or conn.readable(0)):
                    reply = conn.read()
                    if reply[0] == b"message":
                        received.append((int(reply[2].split(b" ", 1)[0]), time.monotonic(), ""))
            finally:
                self.out.messages(received, claimed=False)   # what arrived before a closed connection did arrive
            if self.work_s:
                time.sleep(self.work_s)

    # ------------------------------------------------------------ Streams

    def consume_stream(self, conn: Resp) -> None:
        key, group, name = self.args.key, self.args.group, self.args.name
        self.out.event("connected", port=conn.port, group=group)
        self.next_claim = 0.0                     # claim at once after every (re)connect
        while not self.should_stop():
            if time.monotonic() >= self.next_claim:
                self.claim(conn)
                self.next_claim = time.monotonic() + self.args.min_idle_ms / 2000.0
            try:
                reply = conn.command("XREADGROUP", "GROUP", group, name, "COUNT", self.args.batch,
                                     "BLOCK", BLOCK_MS, "STREAMS", key, ">")
            except ReplyError as exc:
                if not str(exc).startswith("NOGROUP"):
                    raise
                self.create_group(conn)
                continue
            at = time.monotonic()
            if reply:
                self.handle(conn, reply[0][1], at, claimed=False)

    def create_group(self, conn: Resp) -> None:
        """The group is missing (a master that never had it): create it at the stream's start,
        so nothing is skipped (at-least-once)."""
        try:
            conn.command("XGROUP", "CREATE", self.args.key, self.args.group, "0", "MKSTREAM")
            self.out.event("created-group")
        except ReplyError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    def claim(self, conn: Resp) -> None:
        """XAUTOCLAIM every entry pending longer than min-idle (any consumer's), and process it."""
        cursor, claimed, deleted = "0-0", 0, 0
        while True:
            try:
                reply = conn.command("XAUTOCLAIM", self.args.key, self.args.group, self.args.name,
                                     self.args.min_idle_ms, cursor, "COUNT", self.args.batch)
            except ReplyError as exc:
                if str(exc).startswith("NOGROUP"):
                    return
                raise
            at = time.monotonic()
            entries = [e for e in reply[1] if e is not None and e[1] is not None]
            deleted += len(reply[2]) if len(reply) > 2 else 0
            claimed += len(entries)
            self.handle(conn, entries, at, claimed=True)
            cursor = _text(reply[0])
            if cursor == "0-0":
                break
        if claimed or deleted:
            self.out.event("claimed", count=claimed, deleted=deleted)

    def handle(self, conn: Resp, entries, at: float, claimed: bool) -> None:
        """Record the batch (the delivery), process it for work-ms, then XACK it."""
        if not entries:
            return
        received = [(_number(fields), at, _text(entry_id)) for entry_id, fields in entries]
        self.out.messages(received, claimed)
        if self.work_s:
            time.sleep(self.work_s)
        conn.command("XACK", self.args.key, self.args.group, *[entry for _, _, entry in received])


def _number(fields) -> int:
    """The message number from an entry's fields [b"n", b"17", b"p", ...]."""
    pairs = dict(zip(fields[0::2], fields[1::2]))
    return int(pairs[b"n"])


def _kind_of(exc: BaseException) -> str:
    text = str(exc)
    for needle, label in (("refused", "connection refused"), ("reset", "connection reset"),
                          ("Timeout", "timeout"), ("timed out", "timeout"), ("closed", "connection closed")):
        if needle in text:
            return label
    if isinstance(exc, ReplyError):
        return text.split(" ", 1)[0]
    return type(exc).__name__


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="a consumer of the messages workload")
    parser.add_argument("--name", required=True)
    parser.add_argument("--transport", choices=("pubsub", "stream"), required=True)
    parser.add_argument("--key", required=True, help="the channel or the stream")
    parser.add_argument("--group", default="workers")
    parser.add_argument("--out", required=True, help="file to append JSON lines to")
    parser.add_argument("--parent", type=int, required=True, help="pid of the tool: exit when it is gone")
    parser.add_argument("--min-idle-ms", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--work-ms", type=float, default=0.0)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    die_with_parent(args.parent)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # the tool stops it; Ctrl-C is the tool's to handle
    recorder = Recorder(args.out)
    recorder.event("start", pid=os.getpid())
    Consumer(args, Lab(os.environ), recorder).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
