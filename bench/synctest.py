#!/usr/bin/env python3
"""What one `fdatasync` of a group-commit-sized write costs on this disk, by how the file was
laid out beforehand. The store's log appends a batch and syncs it; this shows how much of
that sync is the filesystem's metadata (size change, extent allocation: an ext4 journal
commit) rather than the data. Used for BENCHMARKS.md ("Tried and dropped": preallocated
log segments).

    python3 bench/synctest.py [DIR] [SYNCS]     (default: /tmp, 2000 syncs of 20 KB each)
"""
import os
import sys
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
SIZE = 20480  # a batch of ~15 webhooks' frames


def run(name, layout, flags=0):
    path = os.path.join(DIR, f"synctest-{os.getpid()}-{name}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    total = N * SIZE + 4096
    if layout == "written":
        os.write(fd, b"\0" * total)
        os.fsync(fd)
    elif layout == "fallocated":
        os.posix_fallocate(fd, 0, total)
        os.fsync(fd)
    os.close(fd)
    fd = os.open(path, os.O_RDWR | flags)
    buf = bytearray(b"x" * SIZE)
    if flags & getattr(os, "O_DIRECT", 0):
        import mmap  # O_DIRECT needs an aligned buffer

        buf = mmap.mmap(-1, SIZE)
        buf.write(b"x" * SIZE)
    took = []
    for i in range(N):
        start = time.perf_counter()
        os.pwritev(fd, [buf], i * SIZE)
        if not flags & os.O_DSYNC:
            os.fdatasync(fd)
        took.append(time.perf_counter() - start)
    os.close(fd)
    os.unlink(path)
    took.sort()
    print(f"{name:32s} mean {sum(took) / N * 1e6:6.0f} µs  p50 {took[N // 2] * 1e6:6.0f}  p99 {took[int(N * 0.99)] * 1e6:6.0f}")


for _ in range(2):
    run("append + fdatasync", None)
    run("overwrite written + fdatasync", "written")
    run("overwrite fallocated + fdatasync", "fallocated")
    run("overwrite written, O_DIRECT|O_DSYNC", "written", os.O_DSYNC | getattr(os, "O_DIRECT", 0))
