"""The control channel between the host tool and the filesystem daemon: a Unix stream socket,
one JSON object per line each way. A request is {"cmd": NAME}; the reply is
{"ok": true, "result": {...}} or {"ok": false, "error": "..."}."""

from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import threading
from typing import Callable

# The daemon's subtype: /proc/mounts lists its mounts as type fuse.unsynced, with the source
# "unsynced:<directory of the control socket>" (so a leftover's directory can be found).
FSNAME = "unsynced"
RUNTIME_PREFIX = "unsynced-"   # the name of that directory starts so (tempfile.mkdtemp prefix)
# Signals the FUSE loop in the daemon's main thread must receive: helper threads block them.
LOOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class UnsyncedError(RuntimeError):
    """The filesystem could not be mounted, unmounted or asked something."""


def request(socket_path: str | os.PathLike, cmd: str, timeout_s: float = 30.0) -> dict:
    """Send one command and return its result; UnsyncedError if the daemon does not answer or
    answers with an error."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(os.fspath(socket_path))
            sock.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
            with sock.makefile("rb") as stream:
                line = stream.readline()
    except OSError as exc:
        raise UnsyncedError(f"the filesystem daemon did not answer {cmd!r} on {socket_path}: {exc}") from exc
    if not line:
        raise UnsyncedError(f"the filesystem daemon closed the control socket without answering {cmd!r}")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise UnsyncedError(f"the filesystem daemon refused {cmd!r}: {reply.get('error')}")
    return reply["result"]


class ControlServer:
    """Answers commands from `handlers` (name -> function returning a JSON-able dict), one
    connection at a time, in a background thread."""

    def __init__(self, socket_path: str | os.PathLike, handlers: dict[str, Callable[[], dict]]):
        self.socket_path = os.fspath(socket_path)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        handlers = dict(handlers)

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline()
                if not line:
                    return
                try:
                    cmd = json.loads(line).get("cmd")
                    if cmd not in handlers:
                        raise ValueError(f"unknown command {cmd!r}; known: {sorted(handlers)}")
                    reply = {"ok": True, "result": handlers[cmd]()}
                except Exception as exc:  # the reply says what went wrong; the daemon goes on
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                self.wfile.write(json.dumps(reply).encode() + b"\n")

        old_umask = os.umask(0o077)  # the socket: its owner only
        try:
            self._server = socketserver.UnixStreamServer(self.socket_path, Handler)
        finally:
            os.umask(old_umask)
        self._thread = threading.Thread(target=self._serve, name="unsynced-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass

    def _serve(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, LOOP_SIGNALS)
        self._server.serve_forever(poll_interval=0.2)
