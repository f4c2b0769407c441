"""One worker process beside the decoding pool, for the calls a build makes at its end (:class:`Aside`)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, Future

from medmat_builder.build.signals import worker_init


class Aside(Executor):
    """One worker process beside the decoding pool, for the calls the build makes at its end (the
    Croissant metadata). Started at the start of a build, before the decoding pool and before any
    thread, it runs ``prepare`` (an import) on the core the build's scan leaves idle, then waits.

    :meth:`submit` runs a call there and waits for it: the future it returns is done, with the call's
    result or exception. :meth:`shutdown` ends the process (``cancel_futures``: kill it now)."""

    def __init__(self, prepare: Callable[[], object]):
        ctx = multiprocessing.get_context()
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_aside_main, args=(child, self._conn, prepare, os.getpid()), daemon=True,
                                 name="medmat-aside")
        self._proc.start()
        child.close()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            self._conn.send((fn, args, kwargs))
            ok, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            future.set_exception(RuntimeError(f"medmat's worker process ended unexpectedly ({exc!r}); run the "
                                              "build again, or with --num-proc 1"))
            return future
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures and self._proc.is_alive():
            self._proc.kill()
        else:  # asked to leave (worker processes forked later hold this end too: closing it is not enough)
            try:
                self._conn.send(None)
            except OSError:
                pass
        self._conn.close()
        if wait:
            self._proc.join()


def _aside_main(conn, parent_end, prepare: Callable[[], object], parent: int) -> None:
    """The :class:`Aside` process: ``prepare``, then run each call received and send back its outcome,
    until told to stop (None) or its pipe ends."""
    parent_end.close()
    worker_init(parent)
    try:
        prepare()
    except Exception:  # noqa: BLE001  (the call that needs it fails with the same error, and reports it)
        pass
    while True:
        try:
            call = conn.recv()
        except (EOFError, OSError):
            return
        if call is None:
            return
        fn, args, kwargs = call
        try:
            outcome = (True, fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001  (raised in the main process by the future)
            outcome = (False, exc)
        try:
            conn.send(outcome)
        except Exception as exc:  # noqa: BLE001  (an outcome that cannot be pickled)
            conn.send((False, RuntimeError(f"{fn.__name__} gave a result that cannot be sent back: {exc!r}")))
