#!/usr/bin/env python3
"""Breaks `perf script -F comm,tid,ip,sym` output (call graphs) down by what is on the stack.

    perf-breakdown.py FILE share THREAD [PATTERN ...]   share of THREAD's samples with each
                                                        PATTERN anywhere on the stack
    perf-breakdown.py FILE below THREAD PATTERN [DEPTH] what runs just below the innermost
                                                        frame matching PATTERN (DEPTH frames)
    perf-breakdown.py FILE leaf THREAD PATTERN [DEPTH]  the callers of leaf frames matching
                                                        PATTERN

THREAD is a prefix of the thread name as perf shows it (15 characters at most:
`tokio-rt-worker`, `store-writer`). Patterns are plain substrings of frame names. Written by
bench/profile.sh; see "Profiling" in BENCHMARKS.md.
"""
import collections
import sys

DEFAULT = [
    "axum::serve", "inbound::receive", "verify::", "outbox::submit", "outbox::worker",
    "HostFn::cabi_entry", "hyper::client::conn", "hyper_util::client::legacy", "egress::",
    "[unknown]", "commit_with_log", "FrameLog::sync", "WriteTransaction::commit", "ingest",
    "enqueue_in", "claim_in", "record_in", "history", "entry_SYSCALL", "_rjem", "park",
]


def samples(path):
    out, cur = [], None
    for line in open(path, errors="replace"):
        if not line.strip():
            if cur:
                out.append(cur)
            cur = None
        elif not line.startswith((" ", "\t")):
            cur = (line.split()[0], [])
        elif cur is not None:
            parts = line.strip().split(None, 1)
            cur[1].append(parts[1] if len(parts) > 1 else "?")
    if cur:
        out.append(cur)
    return out


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    path, mode, thread = sys.argv[1:4]
    rest = sys.argv[4:]
    stacks = [st for comm, st in samples(path) if comm.startswith(thread)]
    if not stacks:
        sys.exit(f"no samples of threads named {thread}*")
    n = len(stacks)
    if mode == "share":
        print(f"{thread}*: {n} samples; share with each pattern on the stack")
        for p in rest or DEFAULT:
            hits = sum(1 for st in stacks if any(p in f for f in st))
            print(f"{100 * hits / n:6.1f} %  {p}")
        return
    pattern = rest[0]
    depth = int(rest[1]) if len(rest) > 1 else 1
    counts = collections.Counter()
    for st in stacks:
        if mode == "below":
            idx = [i for i, f in enumerate(st) if pattern in f]
            if idx:
                i = idx[0]  # leaf first: the innermost match
                counts[" -> ".join(f[:80] for f in reversed(st[max(0, i - depth):i])) or "(itself)"] += 1
        elif mode == "leaf":
            if st and pattern in st[0]:
                counts[" <- ".join(f[:70] for f in st[1:1 + depth])] += 1
        else:
            sys.exit(f"unknown mode {mode}")
    print(f"{thread}*: {n} samples; {sum(counts.values())} with {pattern} ({mode})")
    for k, v in counts.most_common(30):
        print(f"{100 * v / n:6.1f} %  {k}")


if __name__ == "__main__":
    main()
