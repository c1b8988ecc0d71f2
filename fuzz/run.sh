#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 120) each, starting from the committed seeds in
# fuzz/corpus/<target>; what the fuzzer finds goes to fuzz/work/<target> (not committed) and a
# crash to fuzz/artifacts/<target>. Needs cargo-fuzz and a nightly toolchain:
#   cargo install cargo-fuzz; fuzz/run.sh 600
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-120}
targets=(config pem ocsp ticket proxy_header)
for target in "${targets[@]}"; do
  mkdir -p "work/$target"
  echo "== $target: ${seconds}s"
  cargo +nightly fuzz run -O "$target" "work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 2>&1 |
    grep -E "^(#[0-9]+\s+DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|Done)" || true
  if compgen -G "artifacts/$target/crash-*" >/dev/null; then
    echo "$target: crash saved under fuzz/artifacts/$target" >&2
    exit 1
  fi
done
