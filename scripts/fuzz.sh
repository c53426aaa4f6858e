#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for SECONDS each (default 300) with cargo fuzz (libFuzzer,
# AddressSanitizer) on the stable toolchain, and prints one line per target: executions,
# corpus size, findings. Findings (crashes, timeouts, out-of-memory) are copied to
# tests/data/fuzz/<target>/, which the test suite replays (tests/fuzz_regressions.rs).
#   cargo install cargo-fuzz; python3 scripts/fuzz_seeds.py; scripts/fuzz.sh 300 [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(idx mnist cifar image safetensors checkpoint config metrics)
[ -d fuzz/corpus ] || python3 scripts/fuzz_seeds.py
# cargo fuzz asks for nightly flags (-Zsanitizer); RUSTC_BOOTSTRAP lets the stable compiler take them.
export RUSTC_BOOTSTRAP=1
(cd fuzz && cargo fuzz build -O >/dev/null)
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  log="fuzz/artifacts/$t.log"
  (cd fuzz && cargo fuzz run -O "$t" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1) >"$log" 2>&1 || true
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  found=0
  for f in fuzz/artifacts/"$t"/*; do
    [ -e "$f" ] || continue
    found=$((found + 1))
    mkdir -p "tests/data/fuzz/$t"
    cp "$f" "tests/data/fuzz/$t/"
  done
  echo "$t: $execs executions in ${seconds} s, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs, $found finding(s)"
done
