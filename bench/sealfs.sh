#!/usr/bin/env bash
# Sealed $HOME (mse-sealfs over a backing directory on the host disk) vs tmpfs vs the host disk,
# plus "homemem": the same sealed filesystem with its backing directory in the tmpfs (isolates the
# FUSE + encryption cost from the host disk's):
#   1. sequential write of 1 GiB (dd bs=1M from /dev/zero, time until dd exits; no fsync),
#   2. sequential read of it back (dd bs=1M to /dev/null),
#   3. create+write(100 B)+close of 10 000 small files (one Python process).
# Each measure is repeated REPEAT times (default 3), locations interleaved, and the median kept.
# Needs root (mounts FUSE and a tmpfs). Usage: bench/sealfs.sh   (env: REPEAT, SIZE_MB, FILES)
# Last line: "home/tmp write ratio: X, small files home/disk ratio: Y".
set -euo pipefail

REPEAT=${REPEAT:-3}
SIZE_MB=${SIZE_MB:-1024}
FILES=${FILES:-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

if [ "$(id -u)" != 0 ]; then
  echo "bench/sealfs.sh: must run as root (mounts FUSE and tmpfs)" >&2
  exit 1
fi

(cd "$ROOT" && cargo build --release -q -p mse-sealfs)
BIN=$TARGET/release/mse-sealfs

WORK=$(mktemp -d /var/tmp/sealfs-bench.XXXXXX)   # on the host disk
mkdir -p "$WORK/disk" "$WORK/tmp" "$WORK/home" "$WORK/homemem"
head -c 32 /dev/urandom >"$WORK/key"
mkfifo "$WORK/ctl" "$WORK/ctl2"
TMPFS_MOUNTED=0
MOUNT_PID=
MOUNT2_PID=

cleanup() {
  set +e
  if [ -n "$MOUNT_PID" ]; then
    exec 3>&-                      # EOF on the control fifo: unmount and wipe
    wait "$MOUNT_PID"
  fi
  if [ -n "$MOUNT2_PID" ]; then
    exec 4>&-
    wait "$MOUNT2_PID"
  fi
  [ "$TMPFS_MOUNTED" = 1 ] && umount "$WORK/tmp"
  rm -rf "$WORK"
}
trap cleanup EXIT

mount -t tmpfs -o size=$((SIZE_MB * 3))m,mode=1777 tmpfs "$WORK/tmp"
TMPFS_MOUNTED=1

wait_mounted() {
  for _ in $(seq 1 100); do
    grep -q "^mounted" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  cat "$1" >&2
  exit 1
}
"$BIN" mount --backing "$WORK/backing" --mountpoint "$WORK/home" --key-file "$WORK/key" \
  --wipe <"$WORK/ctl" >"$WORK/mount.log" 2>&1 &
MOUNT_PID=$!
exec 3>"$WORK/ctl"
wait_mounted "$WORK/mount.log"
"$BIN" mount --backing "$WORK/tmp/.backing" --mountpoint "$WORK/homemem" --key-file "$WORK/key" \
  --wipe <"$WORK/ctl2" >"$WORK/mount2.log" 2>&1 3>&- &   # must not hold the first fifo open
MOUNT2_PID=$!
exec 4>"$WORK/ctl2"
wait_mounted "$WORK/mount2.log"

cat >"$WORK/small.py" <<'EOF'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
data = b"x" * 100
t = time.perf_counter()
for i in range(n):
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(data)
print(f"{time.perf_counter() - t:.4f}")
EOF

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
declare -A RES
# CPU seconds: waited-for children of this shell (dd), plus the sealfs process serving `loc`.
TCK=$(getconf CLK_TCK)
children_cpu() { awk -v t="$TCK" '{ printf "%.4f", ($16 + $17) / t }' /proc/$$/stat; }
server_cpu() {
  case $1 in
    home) awk -v t="$TCK" '{ printf "%.4f", ($14 + $15) / t }' "/proc/$MOUNT_PID/stat" ;;
    homemem) awk -v t="$TCK" '{ printf "%.4f", ($14 + $15) / t }' "/proc/$MOUNT2_PID/stat" ;;
    *) echo 0 ;;
  esac
}

for r in $(seq 1 "$REPEAT"); do
  for loc in tmp disk home homemem; do
    d=$WORK/$loc
    c0=$(children_cpu); k0=$(server_cpu "$loc")
    s=$(now); dd if=/dev/zero of="$d/big" bs=1M count="$SIZE_MB" status=none; e=$(now)
    c1=$(children_cpu); k1=$(server_cpu "$loc")
    RES[$loc.write]+="$(elapsed "$s" "$e") "
    RES[$loc.wcpu]+="$(awk -v a="$c0" -v b="$c1" -v c="$k0" -v d="$k1" 'BEGIN { printf "%.4f", b - a + d - c }') "
    s=$(now); dd if="$d/big" of=/dev/null bs=1M status=none; e=$(now)
    RES[$loc.read]+="$(elapsed "$s" "$e") "
    rm -f "$d/big"
    RES[$loc.small]+="$(python3 "$WORK/small.py" "$d/small$r" "$FILES") "
    rm -rf "$d/small$r"
  done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf "%-8s %12s %12s %12s %14s   (median of %s runs; %s MiB; %s files)\n" \
  where "write s" "write cpu s" "read s" "small files s" "$REPEAT" "$SIZE_MB" "$FILES"
for loc in home homemem tmp disk; do
  for m in write wcpu read small; do
    declare "M_${loc}_${m}=$(median "${RES[$loc.$m]}")"
  done
  w=M_${loc}_write; wc=M_${loc}_wcpu; rd=M_${loc}_read; sm=M_${loc}_small
  printf "%-8s %12s %12s %12s %14s   MiB/s w=%s r=%s\n" "$loc" "${!w}" "${!wc}" "${!rd}" "${!sm}" \
    "$(awk -v s="$SIZE_MB" -v t="${!w}" 'BEGIN { printf "%.0f", s / t }')" \
    "$(awk -v s="$SIZE_MB" -v t="${!rd}" 'BEGIN { printf "%.0f", s / t }')"
done
echo "loadavg during run: $(cut -d' ' -f1-3 /proc/loadavg), cores: $(nproc)"
wr=$(awk -v a="$M_home_write" -v b="$M_tmp_write" 'BEGIN { printf "%.2f", a / b }')
rr=$(awk -v a="$M_home_read" -v b="$M_tmp_read" 'BEGIN { printf "%.2f", a / b }')
sr=$(awk -v a="$M_home_small" -v b="$M_disk_small" 'BEGIN { printf "%.2f", a / b }')
mr=$(awk -v a="$M_homemem_write" -v b="$M_tmp_write" 'BEGIN { printf "%.2f", a / b }')
cr=$(awk -v a="$M_home_wcpu" -v b="$M_tmp_wcpu" 'BEGIN { printf "%.2f", a / b }')
echo "home/tmp read ratio: $rr; homemem/tmp write ratio: $mr; home/tmp write CPU-time ratio: $cr"
echo "home/tmp write ratio: $wr, small files home/disk ratio: $sr"
