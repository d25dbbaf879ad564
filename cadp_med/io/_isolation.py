"""Decode untrusted pixel data in worker processes, so a native decoder cannot take a run down.

pylibjpeg's RLE, JPEG and JPEG 2000 plugins and gdcm are native code. Malformed pixel
data can make them panic (a PyO3 ``PanicException`` derives from ``BaseException``, past
every ``except Exception``), abort, segfault or loop. Run in a worker process, such a
failure costs one file: the worker is replaced, the file is quarantined with the reason
``decoder-crashed`` or ``decoder-timed-out``, and the batch goes on.

Only encapsulated (compressed) Pixel Data go to a worker: native and deflated data are
unpacked by numpy and zlib in process, with sizes checked beforehand
(:mod:`cadp_med.io.limits`). The worker gets a small dataset holding the Image Pixel
module (group 0028), the Pixel Data elements and the transfer syntax, and sends the
array back pickled through a pipe (at header-pipeline image sizes, copying through a
pipe costs less than setting up shared memory per file; see
``benchmarks/bench_isolation.py``).

Workers are started with the ``spawn`` method: a forked copy of a threaded parent
(torch, the network node) can deadlock, and ``forkserver`` breaks in the forked
workers of ``--workers N`` (they inherit a server that is not their child).
"""

from __future__ import annotations

import atexit
import importlib
import multiprocessing
import multiprocessing.util
import os
import threading
import warnings
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset

__all__ = [
    "DECODER_CRASHED",
    "DECODER_TIMED_OUT",
    "DecodeFailed",
    "IsolatedDecoder",
    "decode_payload",
    "pixel_payload",
    "shared_decoder",
]

DECODER_CRASHED = "decoder-crashed"
DECODER_TIMED_OUT = "decoder-timed-out"
DEFAULT_DECODE = "cadp_med.io._isolation:decode_payload"

# Groups the decoders read: Image Pixel module and the Pixel Data elements with
# their offset tables (PS3.3 C.7.6.3, PS3.5 A.4).
_PIXEL_GROUPS = (0x0028, 0x7FE0)


class DecodeFailed(Exception):
    """The worker could not decode, or died, or ran past the time limit.

    Attributes
    ----------
    category : str
        ``decoder-crashed``, ``decoder-timed-out`` or ``pixel-data-not-decodable``.
    """

    def __init__(self, category: str) -> None:
        self.category = category
        super().__init__(category)


def pixel_payload(ds: Dataset) -> Dataset:
    """Return the part of ``ds`` a decoder needs, to send to a worker.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        A dataset with Pixel Data; it is not changed.
    """
    payload = Dataset()
    payload.file_meta = FileMetaDataset()
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None:
        payload.file_meta.TransferSyntaxUID = syntax
    for tag in ds.keys():
        if tag.group in _PIXEL_GROUPS:
            payload.add(ds[tag])
    payload.set_original_encoding(
        ds.original_encoding[0], ds.original_encoding[1], ds.original_character_set
    )
    return payload


def decode_payload(payload: Dataset) -> np.ndarray:
    """Decode a :func:`pixel_payload` as ``Dataset.pixel_array`` does (runs in the worker)."""
    return payload.pixel_array


def _load(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _worker_main(conn: Connection, decode_spec: str) -> None:
    """Decode payloads until the parent closes the pipe."""
    decode = _load(decode_spec)
    warnings.simplefilter("ignore")  # decoder warnings can quote values; none leave here
    # Native decoders print to C stderr; what they print is not ours to pass on.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    while True:
        try:
            payload = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone or closed the pipe
        try:
            conn.send(("ok", decode(payload)))
        except BaseException as exc:  # a Rust panic is a BaseException
            # A decoder that failed may have corrupted its heap first: malformed JPEG
            # 2000 data crashed the *next* file's decode in a reused worker. Report,
            # then exit, so that the next file gets a fresh process.
            conn.send(("error", type(exc).__name__))
            return


class _Worker:
    def __init__(self, context: Any, decode_spec: str) -> None:
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(
            target=_worker_main,
            args=(child, decode_spec),
            name="cadp-med-decoder",
            # Daemonic: a process that exits (a pool worker ends with os._exit after
            # joining its non-daemonic children) stops its decoder instead of
            # waiting for it forever.
            daemon=True,
        )
        self.process.start()
        child.close()  # only the worker holds its end: its death reads as EOF here

    def stop(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


class IsolatedDecoder:
    """A persistent pool of decoder processes.

    Parameters
    ----------
    decode_function : str
        ``"module:function"`` the workers call on each payload; the default is
        :func:`decode_payload`. Tests name a decoder that crashes on purpose.
    start_method : str
        A multiprocessing start method; ``spawn`` by default.

    Notes
    -----
    Callers on several threads each get their own worker (one decode at a time per
    worker); workers are kept for reuse, so the start cost is paid once per process.
    """

    def __init__(
        self, decode_function: str = DEFAULT_DECODE, *, start_method: str = "spawn"
    ) -> None:
        self._context = multiprocessing.get_context(start_method)
        self._decode_function = decode_function
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self.replaced = 0  # workers lost to errors, crashes and time-outs (tests, metrics)

    def _acquire(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.is_alive():
                    return worker
                worker.stop()
        return _Worker(self._context, self._decode_function)

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def decode(self, ds: Dataset, *, timeout_s: float) -> np.ndarray:
        """Return ``ds.pixel_array``, computed in a worker process.

        Parameters
        ----------
        ds : pydicom.dataset.Dataset
            A dataset with Pixel Data.
        timeout_s : float
            How long the worker may take; past it, it is killed.

        Raises
        ------
        DecodeFailed
            With the category ``decoder-crashed`` (the worker died),
            ``decoder-timed-out`` or ``pixel-data-not-decodable`` (the decoder raised).
        """
        payload = pixel_payload(ds)
        worker = self._acquire()
        healthy = False
        try:
            try:
                worker.conn.send(payload)
                if not worker.conn.poll(timeout_s):
                    raise DecodeFailed(DECODER_TIMED_OUT)
                kind, value = worker.conn.recv()
            except (EOFError, OSError):
                raise DecodeFailed(DECODER_CRASHED) from None
            healthy = kind == "ok"  # a worker that reported an error has exited
        finally:
            if healthy:
                self._release(worker)
            else:
                self.replaced += 1
                worker.stop()
        if kind != "ok":
            raise DecodeFailed("pixel-data-not-decodable")
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop every idle worker."""
        with self._lock:
            workers, self._idle = self._idle, []
        for worker in workers:
            worker.stop()


_SHARED: IsolatedDecoder | None = None
_SHARED_LOCK = threading.Lock()


def shared_decoder() -> IsolatedDecoder:
    """Return this process's decoder pool, started on first use and stopped at exit."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = IsolatedDecoder()
            atexit.register(_SHARED.close)
            # A pool worker of ``--workers N`` ends in multiprocessing's exit function,
            # not atexit, and that joins its children after sending the daemonic ones
            # SIGTERM, which the decoders ignore as the pool worker that started them
            # does (an ignored signal stays ignored across exec). Stop them first.
            multiprocessing.util.Finalize(None, _SHARED.close, exitpriority=100)
        return _SHARED


def _forget_after_fork() -> None:
    """In a forked child, drop the parent's pool: its pipes belong to the parent's workers."""
    global _SHARED, _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    if _SHARED is not None:
        for worker in _SHARED._idle:
            worker.conn.close()  # the child's copy of the descriptor only
    _SHARED = None


os.register_at_fork(after_in_child=_forget_after_fork)


def set_shared_decoder(decoder: IsolatedDecoder | None) -> IsolatedDecoder | None:
    """Replace this process's decoder pool (tests); return the previous one."""
    global _SHARED
    with _SHARED_LOCK:
        previous, _SHARED = _SHARED, decoder
    return previous
