#!/usr/bin/env python3
"""A reference LIRS (Jiang and Zhang, "LIRS: An Efficient Low Inter-reference Recency Set
Replacement Policy", SIGMETRICS 2002) replaying a `*.keys.zst` trace as "get; on a miss,
insert": the hit ratio LIRS reaches, to compare Strata's shapes with (docs/benchmarks.md,
"Session 15"). Not a peer: the peers of the benchmarks are the real crates.

1% of the cache holds HIR blocks (the paper's setting); the stack S keeps non-resident HIR
blocks, bounded at 3x the cache (its oldest non-resident entries dropped past 4x).

usage: scripts/lirs-reference.py TRACE:CAPACITY[,TRACE:CAPACITY...] [TRACES_DIR]
  e.g. scripts/lirs-reference.py lirs-multi1:500,arc-p3:160000
"""
import os
import subprocess
import sys
from collections import OrderedDict

HIR_SHARE = 0.01
STACK_BOUND = 3


def read_keys(path):
    data = subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
    return [int(x) for x in data.split()]


def lirs(trace, capacity):
    hir_room = max(1, int(capacity * HIR_SHARE))
    lir_room = capacity - hir_room
    stack = OrderedDict()  # S: oldest first, newest last
    queue = OrderedDict()  # Q: resident HIR blocks, the next to leave first
    state = {}  # key -> "lir", "hir" (resident), "ghost" (non-resident HIR, in S)
    lirs_held = hits = 0

    def prune():
        # The bottom of S is always a LIR block.
        while stack:
            bottom = next(iter(stack))
            if state.get(bottom) == "lir":
                return
            del stack[bottom]
            if state.get(bottom) == "ghost":
                del state[bottom]

    def demote_bottom():
        nonlocal lirs_held
        bottom = next(iter(stack))
        del stack[bottom]
        state[bottom] = "hir"
        queue[bottom] = True
        lirs_held -= 1
        prune()

    for key in trace:
        kind = state.get(key)
        if kind == "lir":
            hits += 1
            stack.move_to_end(key)
            prune()
        elif kind == "hir":
            hits += 1
            if key in stack:
                stack.move_to_end(key)
                state[key] = "lir"
                lirs_held += 1
                del queue[key]
                demote_bottom()
            else:
                stack[key] = True
                queue.move_to_end(key)
        elif lirs_held < lir_room:
            state[key] = "lir"
            lirs_held += 1
            stack[key] = True
            stack.move_to_end(key)
        else:
            if len(queue) >= hir_room:
                leaving, _ = queue.popitem(last=False)
                if leaving in stack:
                    state[leaving] = "ghost"
                else:
                    del state[leaving]
            if kind == "ghost":
                stack.move_to_end(key)
                state[key] = "lir"
                lirs_held += 1
                demote_bottom()
            else:
                state[key] = "hir"
                stack[key] = True
                queue[key] = True
            if len(stack) > (STACK_BOUND + 1) * capacity:
                for old in list(stack)[: len(stack) - STACK_BOUND * capacity]:
                    if state.get(old) == "ghost":
                        del stack[old]
                        del state[old]
    return 100.0 * hits / len(trace)


def main(argv):
    traces_dir = argv[2] if len(argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "traces")
    loaded = {}
    for row in argv[1].split(","):
        trace, capacity = row.split(":")
        if trace not in loaded:
            loaded[trace] = read_keys(os.path.join(traces_dir, trace + ".keys.zst"))
        print(f"{trace} {capacity} {lirs(loaded[trace], int(capacity)):.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
