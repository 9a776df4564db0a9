#!/bin/bash
# The guest image's two checks (make image-test; docs/image.md):
#  1. reproducibility: the image built here (A) and the image built from a copy of the same
#     sources in another directory, with mse-enclave compiled THERE (B), have the same kernel,
#     initrd and image.json digests, and neither initrd contains either build directory;
#  2. boot: QEMU (TCG) boots B's kernel and initrd and the kernel runs /init (mse-enclave);
#  3. smoke: with a test /init (tests/image/smoke-init.c) the guest loads its kernel modules, has
#     configfs-tsm, and its libpython runs the standard library (ssl + CA bundle, sqlite3, ctypes).
# Needs: target/debug/mse-node and mse-enclave built by `make build`, QEMU >= 10 (make qemu).
# The copy reuses the registry crates already compiled in target/debug (hard links) but
# recompiles every workspace crate in its own directory, so build paths get their chance to leak.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CARGO=${CARGO:-cargo}
BIN=${MSE_BIN_DIR:-$ROOT/target/debug}
T=$(mktemp -d "${TMPDIR:-/tmp}/mse-image-repro.XXXXXX")
[ -n "${MSE_IMAGE_TEST_KEEP:-}" ] || trap 'rm -rf "$T"' EXIT
passed=0
failed=0
pass() { echo "image-test: PASS $*"; passed=$((passed + 1)); }
fail() { echo "image-test: FAIL $*"; failed=$((failed + 1)); }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# --- A: this directory -------------------------------------------------------------------------
t0=$(now)
# `cargo test --workspace` (run before this in `make test`) relinks mse-enclave with the features
# the test targets unify: relink make build's binary first, the one B is compared with.
(cd "$ROOT" && "$CARGO" build -q --workspace --bin mse-enclave)
(cd "$ROOT" && "$BIN/mse-node" image build --out "$T/a" --enclave "$BIN/mse-enclave") > "$T/a.digests"
echo "image-test: build A (here) in $(secs "$t0" "$(now)") s"

# --- B: the same sources in another directory --------------------------------------------------
t0=$(now)
mkdir -p "$T/src" "$T/target/debug"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) \
  | tar -C "$T/src" -xf -
# Seed B's target dir with the compiled registry crates (deps/ hard-linked: no copy when on the
# same file system; build/ and .fingerprint/, which cargo rewrites in place, copied), minus every
# workspace crate's artefacts and build state, which B compiles itself.
if cp -al "$ROOT/target/debug/deps" "$T/target/debug/" 2> /dev/null \
  && cp -a "$ROOT/target/debug/build" "$ROOT/target/debug/.fingerprint" "$T/target/debug/"; then
  find "$T/target/debug/deps" "$T/target/debug/build" "$T/target/debug/.fingerprint" \
    -maxdepth 1 \( -name 'mse-*' -o -name 'mse_*' -o -name 'libmse_*' -o -name 'mse' \) \
    -exec rm -rf {} +
else
  echo "image-test: cannot hard-link $ROOT/target into $T: B compiles everything (slow)"
  rm -rf "$T/target/debug"/*
fi
# --workspace: the same dependency features as `make build` (cargo build --workspace --bins), whose
# mse-enclave A is; `-p mse-enclave` alone would unify fewer features and link another binary.
(cd "$T/src" && "$CARGO" build -q --workspace --bin mse-enclave --target-dir "$T/target")
echo "image-test: mse-enclave compiled in $T/src in $(secs "$t0" "$(now)") s"
t0=$(now)
(cd "$T/src" && "$BIN/mse-node" image build --out "$T/b" --enclave "$T/target/debug/mse-enclave") \
  > "$T/b.digests"
echo "image-test: build B ($T/src) in $(secs "$t0" "$(now)") s"

if diff "$T/a.digests" "$T/b.digests" > /dev/null && cmp -s "$T/a/image.json" "$T/b/image.json"; then
  pass "reproducible: $(tr '\n' ' ' < "$T/a.digests")"
else
  fail "not reproducible: A and B differ:"
  diff "$T/a.digests" "$T/b.digests" || true
fi
leaks=0
for img in "$T/a/initrd.img" "$T/b/initrd.img"; do
  for p in "$ROOT/" "$T/"; do
    if grep -qaF "$p" "$img"; then
      fail "$img contains the build path $p"
      leaks=1
    fi
  done
done
[ "$leaks" = 0 ] && pass "no build path ($ROOT/, $T/) in either initrd"

[ -n "${MSE_IMAGE_TEST_NOBOOT:-}" ] && { echo "image-test: $passed passed, $failed failed"; exit 0; }
# --- boot under TCG ----------------------------------------------------------------------------
if ! qemu-system-x86_64 --version 2> /dev/null | grep -qE 'version (1[0-9]|[2-9][0-9])\.'; then
  fail "boot: QEMU >= 10 is not installed (make qemu)"
else
  spec=$(printf '0%.0s' $(seq 64))
  log="$T/boot.log"
  t0=$(now)
  timeout 180 qemu-system-x86_64 -accel tcg -m 1024 -nographic -no-reboot -nodefaults \
    -serial "file:$log" -kernel "$T/b/vmlinuz" -initrd "$T/b/initrd.img" \
    -append "console=ttyS0 panic=-1 loglevel=7 mse.spec=$spec" > /dev/null 2>&1 &
  qemu=$!
  t_init=""
  # /init runs once the kernel says so and it neither fails to execute nor to link; give it 15 s
  # after that to fail (a guest mode waiting for its inputs keeps running: that passes too).
  left=900
  while [ "$left" -gt 0 ] && kill -0 "$qemu" 2> /dev/null; do
    if [ -z "$t_init" ] && grep -qa "Run /init as init process" "$log" 2> /dev/null; then
      t_init=$(secs "$t0" "$(now)")
      left=75
    fi
    if grep -qaE "Attempted to kill init|Kernel panic" "$log" 2> /dev/null; then
      break
    fi
    left=$((left - 1))
    sleep 0.2
  done
  sleep 1
  kill "$qemu" 2> /dev/null || true
  wait "$qemu" 2> /dev/null || true
  if [ -z "$t_init" ]; then
    fail "boot: the kernel never ran /init (serial log follows)"
    tail -n 30 "$log" || true
  elif grep -qaE "Failed to execute /init|error while loading shared libraries|No working init" "$log"; then
    fail "boot: /init did not start:"
    grep -aE "Failed to execute|error while loading|No working init" "$log"
  else
    pass "boot: the kernel ran /init $t_init s after QEMU started (TCG, loglevel=7); then: $(sed -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' "$log" | awk '/Run \/init as init process/ { f = 1; next } f && !/^ *\[/ && NF { print; exit }' | head -c 160 || true)"
  fi
fi

# --- what the guest gives mse-enclave: modules, configfs-tsm, libpython + stdlib, CA bundle ----
# tests/image/smoke-init.c, appended as a second cpio archive, replaces /init for this boot only.
if ! qemu-system-x86_64 --version 2> /dev/null | grep -qE 'version (1[0-9]|[2-9][0-9])\.'; then
  fail "smoke: QEMU >= 10 is not installed (make qemu)"
else
  cc -O1 -o "$T/smoke-init" "$ROOT/tests/image/smoke-init.c" -ldl
  python3 - "$T/smoke-init" "$T/smoke.cpio" << 'PY'
import sys
data = open(sys.argv[1], "rb").read()
def entry(name, mode, body, ino):
    n = name.encode() + b"\0"
    head = b"070701" + b"".join(b"%08x" % v for v in (ino, mode, 0, 0, 1, 0, len(body), 0, 0, 0, 0, len(n), 0))
    out = head + n
    out += b"\0" * (-len(out) % 4)
    return out + body + b"\0" * (-len(body) % 4)
archive = entry("init", 0o100755, data, 999999) + entry("TRAILER!!!", 0, b"", 0)
open(sys.argv[2], "wb").write(archive + b"\0" * (-len(archive) % 512))
PY
  cat "$T/b/initrd.img" "$T/smoke.cpio" > "$T/smoke-initrd.img"
  t0=$(now)
  timeout 300 qemu-system-x86_64 -accel tcg -cpu max -m 1024 -nographic -no-reboot -nodefaults \
    -serial "file:$T/smoke.log" -kernel "$T/b/vmlinuz" -initrd "$T/smoke-initrd.img" \
    -append "console=ttyS0 quiet panic=-1" > /dev/null 2>&1 || true
  t_smoke=$(secs "$t0" "$(now)")
  tr -d '\r' < "$T/smoke.log" | grep -ao 'SMOKE .*' > "$T/smoke.txt" || true
  want_modules=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["modules"]))' "$T/b/image.json")
  bad_modules=$(grep -a '^SMOKE module' "$T/smoke.txt" | grep -v ' loaded$' | grep -vE '^SMOKE module (sev|tdx)-guest\.ko No such device$' || true)
  got_modules=$(grep -ac '^SMOKE module' "$T/smoke.txt" || true)
  if [ "$got_modules" = "$want_modules" ] && [ -z "$bad_modules" ] \
    && grep -qaE '^SMOKE python 3\.11\.[0-9]+ OpenSSL .* ca [1-9][0-9]* mke2fs True tsm True$' "$T/smoke.txt"; then
    pass "smoke ($t_smoke s): $got_modules modules loaded in order (sev-guest/tdx-guest: no such device outside a CVM), configfs-tsm, $(grep -a '^SMOKE python' "$T/smoke.txt" | cut -c7-)"
  else
    fail "smoke: the guest image is not what mse-enclave needs (want $want_modules modules):"
    cat "$T/smoke.txt"
    [ -s "$T/smoke.txt" ] || tail -n 20 "$T/smoke.log"
  fi
fi
echo "image-test: $passed passed, $failed failed"
[ "$failed" = 0 ]
