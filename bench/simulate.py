#!/usr/bin/env python3
"""The cluster simulator over many seeds: every property of every run, and a table for docs/.

Runs `gatemesh simulate --json` for each row of a matrix (nodes x links x budget mode), over
--seeds seeds each, a few at a time, and prints one markdown row per (nodes, links, mode): the
worst of each figure over the seeds, and how many runs broke a property (each such run is printed
with the command that reproduces it). Exits 1 if any did.

    python3 bench/simulate.py --binary .build-rel/release/gatemesh --seeds 20
    python3 bench/simulate.py --nodes 5 50 --modes bounded --seeds 5 --jobs 2
"""
import argparse
import concurrent.futures
import json
import subprocess
import sys
import time

LINKS = {
    "lan": ["--profile", "lan"],
    "wan": ["--profile", "wan", "--delay", "150ms", "--jitter", "20ms", "--loss", "0.05"],
}


def command(binary, nodes, links, mode, seed, duration, faults):
    cmd = [binary, "simulate", "--nodes", str(nodes), "--duration", f"{duration}s", "--seed", str(seed), "--json",
           "--rule-writes", "5"] + LINKS[links]
    if mode != "none":
        cmd += ["--budget", mode, "--budget-limit", "1", "--rps", "200", "--scopes", "10", "--skew", "300ms"]
    if faults:
        # A kill with a restart once the cluster has converged (50 nodes across regions take 31 s).
        cmd += ["--kill", f"1@{max(duration // 3, 60 if nodes >= 50 else 0)}s", "--restart", "10s"]
    return cmd


def run(cmd):
    start = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - start
    try:
        report = json.loads(p.stdout.splitlines()[0])
    except (IndexError, json.JSONDecodeError):
        report = {"violations": [f"no report (exit {p.returncode}): {p.stderr.strip()[:300]}"]}
    return cmd, report, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=".build-rel/release/gatemesh")
    ap.add_argument("--nodes", type=int, nargs="+", default=[5, 50])
    ap.add_argument("--links", nargs="+", default=["lan", "wan"], choices=sorted(LINKS))
    ap.add_argument("--modes", nargs="+", default=["none", "soft", "bounded", "strict"],
                    choices=["none", "soft", "bounded", "strict"])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--duration", type=int, default=0, help="seconds per run (default: 90 below 50 nodes, else 150)")
    ap.add_argument("--no-faults", action="store_true", help="no kill and restart")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    rows = []
    for nodes in args.nodes:
        duration = args.duration or (90 if nodes < 50 else 150)
        for links in args.links:
            for mode in args.modes:
                rows.append(((nodes, links, mode), [command(args.binary, nodes, links, mode, seed, duration, not args.no_faults)
                                                    for seed in range(1, args.seeds + 1)]))
    failed = 0
    print("| nodes | links | budget | runs | broke a property | converged (worst) | false deaths | "
          "cache key moves without a death | rules agreed after writes stopped (worst) | overshoot / bound (worst) | "
          "spend lost | spend agreed after traffic stopped (worst) | bytes / node / s (mean) | wall time per run (mean) |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for (nodes, links, mode), cmds in rows:
            results = list(pool.map(run, cmds))
            broke = [(c, r) for c, r, _ in results if r.get("violations")]
            failed += len(broke)
            reports = [r for _, r, _ in results if "nodes" in r]

            def worst(get):
                values = [get(r) for r in reports]
                if any(v is None for v in values):
                    return "never"
                return max(values) if values else None

            converged = worst(lambda r: r["converged_at_ms"])
            rules = worst(lambda r: r.get("rules", {}).get("agreed_after_stop_ms"))
            deaths = sum(r["false_deaths"] for r in reports)
            moves = sum(r["cache_owner_moves_after_convergence"] for r in reports) if args.no_faults else "(kills)"
            if mode != "none":
                ratio = max((r["budget"]["overshoot_nanos"], r["budget"]["overshoot_bound_nanos"]) for r in reports)
                overshoot = f"${ratio[0] / 1e9:.4f} / ${ratio[1] / 1e9:.4f}"
                lost = f"${sum(r['budget']['lost_nanos'] for r in reports) / 1e9:.4f}"
                spend = worst(lambda r: r["budget"]["agreed_after_stop_ms"])
                spend = spend if spend == "never" else f"{spend / 1000:.2f} s"
            else:
                overshoot = lost = spend = "-"
            mean_bytes = sum(r["bytes_per_node_per_second"] for r in reports) / max(1, len(reports))
            mean_wall = sum(w for _, _, w in results) / len(results)
            conv = converged if converged == "never" else f"{converged / 1000:.1f} s"
            rules = rules if rules in ("never", None) else f"{rules / 1000:.2f} s"
            print(f"| {nodes} | {links} | {mode} | {len(results)} | {len(broke)} | {conv} | {deaths} | {moves} | {rules} | "
                  f"{overshoot} | {lost} | {spend} | {mean_bytes:,.0f} | {mean_wall:.1f} s |", flush=True)
            for c, r in broke:
                print(f"  broke: {r['violations']}\n  reproduce: {' '.join(c)}", file=sys.stderr, flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
