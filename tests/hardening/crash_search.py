"""Bounded search for pixel data that crash or hang a native decoder (not a test).

Mutates the first fragment of compressed pydicom test files and decodes each mutant
through the isolated decoder; mutants that killed or stalled a worker are saved to
/tmp/crashsearch. Usage: ``python -m tests.hardening.crash_search N [SEED]``. A file
that crashes a *reused* worker may only do so after an earlier mutant corrupted the
heap: confirm each find in a fresh process before adding it to ``corpus/``.
"""

import collections
import random
import struct
import sys
import time

import pydicom
from pydicom.data import get_testdata_files

from cadp_med.io._isolation import DecodeFailed, IsolatedDecoder


def mutate(ds, rng):
    data = bytearray(ds.PixelData)
    kind = rng.choice(["flip", "rle_offsets", "len", "trunc_frag", "bytes"])
    # locate first fragment payload: after BOT item (8 + len) and next item header (8)
    bot_len = struct.unpack("<I", data[4:8])[0]
    start = 8 + bot_len + 8
    if kind == "rle_offsets" and ds.file_meta.TransferSyntaxUID.name.startswith("RLE"):
        # RLE header: 16 uint32 (n segments + 15 offsets)
        i = rng.randrange(0, 16)
        struct.pack_into(
            "<I",
            data,
            start + 4 * i,
            rng.choice([0, 1, 63, 64, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)]),
        )
    elif kind == "len":
        pos = rng.randrange(start, min(len(data) - 4, start + 200))
        struct.pack_into(
            "<I", data, pos, rng.choice([0, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << 32)])
        )
    elif kind == "bytes":
        for _ in range(rng.randrange(1, 20)):
            pos = rng.randrange(start, len(data) - 8)
            data[pos] = rng.randrange(256)
    else:
        for _ in range(rng.randrange(1, 8)):
            pos = rng.randrange(start, len(data) - 8)
            data[pos] ^= 1 << rng.randrange(8)
    ds.PixelData = bytes(data)
    return kind


if __name__ == "__main__":
    n = int(sys.argv[1])
    files = {f.rsplit("/", 1)[1]: f for f in get_testdata_files()}
    names = [
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "JPEG2000.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "JPEG-LL.dcm",
    ]
    dec = IsolatedDecoder()
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    counts = collections.Counter()
    t0 = time.time()
    for i in range(n):
        name = names[i % len(names)]
        ds = pydicom.dcmread(files[name])
        kind = mutate(ds, rng)
        try:
            dec.decode(ds, timeout_s=10)
            counts[(name, "ok")] += 1
        except DecodeFailed as e:
            counts[(name, e.category)] += 1
            if e.category in ("decoder-crashed", "decoder-timed-out"):
                out = f"/tmp/crashsearch/{e.category}-{i}-{name}"
                ds.save_as(out, enforce_file_format=True)
                print("FOUND", e.category, out, kind, flush=True)
    print(dict(counts), f"{time.time() - t0:.0f}s", flush=True)
    dec.close()
