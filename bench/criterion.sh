#!/usr/bin/env bash
# Runs the criterion micro-benchmarks (verification schemes, the store's group commit, the
# sandbox's per-call costs) and rewrites the table between the criterion markers in
# BENCHMARKS.md from criterion's own estimates. Usage: bench/criterion.sh [seconds-per-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
TARGET=${CARGO_TARGET_DIR:-target}
# BENCHES="verify" reruns some; the table is rebuilt from every estimate criterion has kept.
for b in ${BENCHES:-verify store plugin}; do
  cargo bench -p switchboard --bench "$b" -- --warm-up-time 1 --measurement-time "$SECS" >/dev/null
done
python3 - "$TARGET/criterion" "$SECS" <<'PY'
import json, os, re, sys, datetime, subprocess
root, secs = sys.argv[1], sys.argv[2]
rows = []
for dirpath, _, files in sorted(os.walk(root)):
    if dirpath.endswith("/new") and "estimates.json" in files:
        bench = json.load(open(os.path.join(dirpath, "benchmark.json")))
        est = json.load(open(os.path.join(dirpath, "estimates.json")))
        ns = est["median"]["point_estimate"]
        lo, hi = est["median"]["confidence_interval"]["lower_bound"], est["median"]["confidence_interval"]["upper_bound"]
        unit = lambda v: f"{v/1e6:.2f} ms" if v >= 1e6 else (f"{v/1e3:.2f} µs" if v >= 1e3 else f"{v:.0f} ns")
        thr = bench.get("throughput") or {}
        per = ""
        if "Elements" in thr and thr["Elements"] > 1:
            per = f"{thr['Elements'] / (ns / 1e9):,.0f} /s"
        rows.append((bench["full_id"], unit(ns), f"{unit(lo)} – {unit(hi)}", per))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
table = [f"<!-- criterion:begin -->",
         f"Measured {datetime.date.today()} on {cpu}, {os.cpu_count()} cores, {rustc}; command: `bench/criterion.sh {secs}` (median, 95 % interval).",
         "", "| benchmark | median | interval | throughput |", "|---|---|---|---|"]
table += [f"| `{n}` | {m} | {ci} | {t} |" for n, m, ci, t in rows]
table.append("<!-- criterion:end -->")
doc = open("BENCHMARKS.md").read()
doc = re.sub(r"<!-- criterion:begin -->.*<!-- criterion:end -->", "\n".join(table), doc, flags=re.S)
open("BENCHMARKS.md", "w").write(doc)
print("\n".join(table))
PY
