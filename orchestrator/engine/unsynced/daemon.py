"""The filesystem process: serves a backing directory at a mountpoint through the durability
model, with a control socket and the modelled kernel writeback.

    python -m orchestrator.engine.unsynced.daemon --backing DIR --mountpoint DIR \\
        --control SOCKET [--dirty-expire-s 30] [--writeback-interval-s 5] \\
        [--exit-with-parent] [--orphan-cleanup DIR]

Control commands (see control.py): `stats`, `freeze_writeback` (no more modelled writeback
until the next power loss: send it just before killing the writers), `power_loss` (discard
everything not durable; the reply holds what was discarded and the counters), `sync` (make
everything durable), `writeback` (one writeback tick now). A writeback interval of 0 turns
the modelled writeback off (data then becomes durable only by fsync); a dirty-expire age of
0 makes every tick write back all volatile data.

It ends when unmounted (fusermount3 -u) or on SIGTERM, SIGINT or SIGHUP (libfuse then
unmounts, lazily if busy); with --exit-with-parent also when the process that started it is
gone. A clean end keeps everything as processes saw it (no power loss).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import threading

from .control import LOOP_SIGNALS, ControlServer
from .fusefs import UnsyncedOperations, run_fuse
from .model import DurabilityModel

log = logging.getLogger("unsynced")


class WritebackTicker:
    """Runs `model.writeback()` every `interval_s` (if > 0), and with `watch_parent` sends the
    process SIGTERM once its parent has changed (the starter died: the mount must not stay)."""

    PARENT_CHECK_S = 0.5

    def __init__(self, model: DurabilityModel, interval_s: float, watch_parent: bool):
        self.model = model
        self.interval_s = interval_s
        self.watch_parent = watch_parent
        self._parent = os.getppid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="unsynced-writeback", daemon=True)

    def start(self) -> None:
        if self.interval_s > 0 or self.watch_parent:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, LOOP_SIGNALS)
        step = min(self.interval_s, self.PARENT_CHECK_S) if self.interval_s > 0 else self.PARENT_CHECK_S
        waited = 0.0
        while not self._stop.wait(step):
            waited += step
            if self.watch_parent and os.getppid() != self._parent:
                log.warning("the process that started the filesystem is gone: unmounting")
                os.kill(os.getpid(), signal.SIGTERM)
                return
            if self.interval_s > 0 and waited >= self.interval_s - 1e-9:
                waited = 0.0
                try:
                    self.model.writeback()
                except OSError:
                    log.exception("writeback tick failed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.engine.unsynced.daemon",
                                     description="A FUSE filesystem that forgets un-fsynced writes on demand.")
    parser.add_argument("--backing", required=True, help="directory whose content is served")
    parser.add_argument("--mountpoint", required=True, help="where to mount it")
    parser.add_argument("--control", required=True, help="Unix socket path for control commands")
    parser.add_argument("--dirty-expire-s", type=float, default=30.0,
                        help="age in seconds after which volatile data is written back (Linux: 30)")
    parser.add_argument("--writeback-interval-s", type=float, default=5.0,
                        help="seconds between writeback ticks, 0 for none (Linux: 5)")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="unmount and exit when the starting process is gone")
    parser.add_argument("--orphan-cleanup", metavar="DIR",
                        help="a directory (control socket, log) to remove at exit if the starting process is gone")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s unsynced[%(process)d] %(levelname)s %(message)s")
    os.umask(0)  # the kernel already applied the caller's umask to the modes it passes
    parent = os.getppid()
    model = DurabilityModel(args.backing, dirty_expire_s=max(args.dirty_expire_s, 0.0))
    operations = UnsyncedOperations(model)

    def stats() -> dict:
        return {**model.stats(), "fuse_ops": dict(operations.op_counts),
                "writeback_interval_s": args.writeback_interval_s, "pid": os.getpid()}

    def power_loss() -> dict:
        discarded = model.power_loss()
        return {"discarded": discarded, "stats": stats()}

    def sync() -> dict:
        model.sync()
        return stats()

    def freeze_writeback() -> dict:
        model.freeze_writeback()
        return stats()

    control = ControlServer(args.control, {"stats": stats, "power_loss": power_loss, "sync": sync,
                                           "writeback": model.writeback, "freeze_writeback": freeze_writeback})
    ticker = WritebackTicker(model, args.writeback_interval_s, args.exit_with_parent)
    control.start()
    ticker.start()
    try:
        run_fuse(operations, os.path.abspath(args.mountpoint), os.path.dirname(os.path.abspath(args.control)))
    except RuntimeError as exc:
        log.error("libfuse failed: %s", exc)
        return 1
    finally:
        ticker.stop()
        control.stop()
        model.close()
        if args.orphan_cleanup and os.getppid() != parent:
            shutil.rmtree(args.orphan_cleanup, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
