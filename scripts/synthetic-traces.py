#!/usr/bin/env python3
"""Writes synthetic traces (same format as shared/traces: zstd text, one u64 key per line) to a
folder, for checking the policy on workloads it was not designed against.

usage: scripts/synthetic-traces.py OUT_DIR
"""
import os, random, subprocess, sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

def zipf_sampler(n, s, rng):
    # Inverse-CDF sampling over ranks 1..n.
    weights = [1.0 / (r ** s) for r in range(1, n + 1)]
    total = sum(weights)
    cdf, acc = [], 0.0
    for w in weights:
        acc += w / total
        cdf.append(acc)
    import bisect
    perm = list(range(n))
    rng.shuffle(perm)
    return lambda: perm[min(bisect.bisect_left(cdf, rng.random()), n - 1)]

def write(name, keys):
    path = os.path.join(out, name + ".keys.zst")
    data = "\n".join(str(k) for k in keys).encode()
    subprocess.run(["zstd", "-q", "-f", "-o", path], input=data, check=True)
    print(path, len(keys), len(set(keys)))

rng = random.Random(20261128)
z = zipf_sampler(200_000, 0.8, rng)
write("syn-zipf08", [z() for _ in range(400_000)])

# A hot Zipf set interleaved with a loop over 3,000 cold keys (scan/loop resistance).
z = zipf_sampler(50_000, 1.0, rng)
keys, i = [], 0
for _ in range(300_000):
    if rng.random() < 0.4:
        keys.append(10_000_000 + i % 3_000); i += 1
    else:
        keys.append(z())
write("syn-zipf-loop", keys)

def recency(n, start):
    # Recency-heavy: half the requests are new keys, half re-read one of the last 2,000.
    keys, recent, nxt = [], [], start
    for _ in range(n):
        if rng.random() < 0.5 or not recent:
            nxt += 1; recent.append(nxt); recent = recent[-2_000:]; keys.append(nxt)
        else:
            keys.append(recent[int(rng.random() * len(recent))])
    return keys

# Phase change: recency-heavy (each new key re-read soon after), then frequency-heavy Zipf.
keys = recency(150_000, 20_000_000)
z = zipf_sampler(100_000, 0.9, rng)
keys += [z() for _ in range(150_000)]
write("syn-phases", keys)

# Late changes, for the simulations' rests (docs/memory-tier.md): a long stretch of one
# workload, then another that wants a different shape. Written with the change that lets
# rests grow, to check it still notices such a change; not part of the untuned set above.
loop = lambda n: [30_000_000 + i % 1_300 for i in range(n)]
write("syn-late-loop", recency(1_500_000, 40_000_000) + loop(500_000))
write("syn-late-recency", loop(1_500_000) + recency(500_000, 50_000_000))
