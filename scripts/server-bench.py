#!/usr/bin/env python3
"""Strata's server against redis-server, same machine, same run: redis-benchmark SET/GET at
-P 1 and -P 16, then memory per key after loading 1M keys. Prints a Markdown table.

    cargo build --release -p strata-server
    python3 scripts/server-bench.py [--rounds 3] [--requests 500000]

redis-server runs with no persistence (--save "" --appendonly no). Strata runs twice: with its
disk tier (the default: every write also goes to disk, plain SETs written behind once a
second, synced every second) and with
--no-disk (memory only, like the Redis it is compared with), each with its default threads (one
per CPU) and, with --one-thread, also with --threads 1 (Redis's model). It also reports each server's CPU time per request, read from /proc. For reference, the same
runs go to redis-server with its own persistence on (--appendonly yes --appendfsync everysec),
which, like Strata's disk tier, writes every write to a file and syncs it every second.
"""
import argparse, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STRATA = os.path.join(ROOT, "target", "release", "strata")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc):
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"server on {port} exited: {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"server on {port} did not start")


def start(kind, scratch):
    port = free_port()
    if kind.startswith("redis"):
        aof = ["yes", "--appendfsync", "everysec"] if kind == "redis aof" else ["no"]
        os.makedirs(os.path.join(scratch, kind), exist_ok=True)
        cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", *aof,
               "--daemonize", "no", "--bind", "127.0.0.1", "--dir", os.path.join(scratch, kind)]
    else:
        cmd = [STRATA, "serve", "--port", str(port), "--maxmemory", "4gb"]
        cmd += ["--no-disk"] if "no-disk" in kind else ["--data-dir", os.path.join(scratch, kind)]
        if "1-thread" in kind:
            cmd += ["--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def cpu_seconds(pid):
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench(pid, port, test, pipeline, requests):
    """(requests/s, server CPU µs per request)."""
    cpu = cpu_seconds(pid)
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", test, "-c", "50", "-r", "100000",
         "-n", str(requests), "-P", str(pipeline), "--csv", "-q"],
        check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if cells and cells[0].upper() == test.upper():
            return float(cells[1]), (cpu_seconds(pid) - cpu) * 1e6 / requests
    sys.exit(f"no result in {out!r}")


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def used_memory(port):
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "memory"],
                         check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    return 0


def load_keys(port, n):
    """SET key:%012d xxx for n keys through redis-cli --pipe (values of 3 bytes, like
    redis-benchmark's default)."""
    lines = "".join(f"*3\r\n$3\r\nSET\r\n$16\r\nkey:{i:012d}\r\n$3\r\nxxx\r\n" for i in range(n))
    subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=lines.encode(),
                   check=True, capture_output=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=500_000)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--one-thread", action="store_true", help="also run Strata with --threads 1")
    args = ap.parse_args()
    kinds = ["redis", "strata", "strata no-disk", "redis aof"]
    if args.one_thread:
        kinds += ["strata 1-thread", "strata no-disk 1-thread"]
    scratch = tempfile.mkdtemp(prefix="strata-server-bench")
    results = {k: {} for k in kinds}
    try:
        for rnd in range(args.rounds):
            for kind in kinds[rnd % len(kinds):] + kinds[:rnd % len(kinds)]:
                proc, port = start(kind, scratch)
                for test in ["set", "get"]:
                    for p in [1, 16]:
                        n = args.requests * (4 if p == 16 else 1)
                        results[kind].setdefault((test, p), []).append(bench(proc.pid, port, test, p, n))
                stop(proc)
                shutil.rmtree(os.path.join(scratch, kind), ignore_errors=True)
        memory = {}
        for kind in ["redis", "strata", "strata no-disk"]:
            proc, port = start(kind, scratch)
            before_rss, before_used = rss(proc.pid), used_memory(port)
            load_keys(port, args.keys)
            time.sleep(2)
            after_rss, after_used = rss(proc.pid), used_memory(port)
            memory[kind] = ((after_used - before_used) / args.keys, (after_rss - before_rss) / args.keys)
            stop(proc)
            shutil.rmtree(os.path.join(scratch, kind), ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{args.rounds} rounds; redis-server's median, and each other server's ratio to redis-server"
          " in the same round: median (min–max)")
    med = lambda kind, key, i: statistics.median(x[i] for x in results[kind][key])

    def paired(kind, key, i):
        """The ratio to redis-server round by round (both ran minutes apart, under the same
        load on this shared machine): its median, min and max."""
        ratios = [x[i] / r[i] for x, r in zip(results[kind][key], results["redis"][key])]
        return f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"

    header = "| test | pipeline | redis-server | " + " | ".join(kinds[1:]) + " |"
    rule = "|---|---|---|" + "---|" * (len(kinds) - 1)
    for title, i, fmt in [("requests per second (higher is better)", 0, "{:,.0f}"),
                          ("server CPU µs per request, user + system (lower is better)", 1, "{:.2f}")]:
        print()
        print(title)
        print()
        print(header)
        print(rule)
        for test in ["set", "get"]:
            for p in [1, 16]:
                r = med("redis", (test, p), i)
                cells = [paired(k, (test, p), i) for k in kinds[1:]]
                print(f"| {test.upper()} | {p} | {fmt.format(r)} | " + " | ".join(cells) + " |")
    print()
    print(f"| server | used_memory per key | RSS growth per key ({args.keys:,} keys) |")
    print("|---|---|---|")
    for kind, (u, r) in memory.items():
        print(f"| {kind} | {u:.0f} B | {r:.0f} B |")


if __name__ == "__main__":
    main()
