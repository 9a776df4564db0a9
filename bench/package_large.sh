#!/usr/bin/env bash
# `mse package` of a code directory holding one 2 GB file (sparse: reads as zeros) plus the
# scaffolded app: peak RSS (/usr/bin/time -v "Maximum resident set size"). Issue 16.6 asks for
# under 100 MB, i.e. memory independent of the file size (large files are streamed).
# Usage: bench/package_large.sh [SIZE_BYTES]   (default 2 GiB)
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-$((2 << 30))}"
cargo build --release -q -p mse-cli --bin mse
mse="$PWD/target/release/mse"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
"$mse" scaffold app >/dev/null
truncate -s "$size" app/mse_src/big.bin
/usr/bin/time -v "$mse" package --path app/mse.toml --output out 2>time.txt >package.txt
cat package.txt
grep -E "Maximum resident set size|Elapsed \(wall clock\)|Exit status" time.txt
ls -l out/*.tar | awk '{print "package bytes: " $5}'
