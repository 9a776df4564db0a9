#!/usr/bin/env bash
# The whole MSE story on this machine, step by step: a local node (simulated TEE), a project,
# the scaffolded app tested locally, deployed, verified, called over TLS that ends inside the
# enclave, its logs, then stopped. `make demo` runs it after the build.
#
# Every step checks its own result and the script stops at the first one that is wrong, so
# `tests/python/test_demo.py` runs this very script as the end-to-end test of the story.
#
# Env (all optional):
#   MSE_BIN_DIR      where mse, mse-node, mse-enclave are (default: target/debug)
#   DEMO_OUT         working directory, wiped first except DEMO_OUT/cache (default: demo-out)
#   DEMO_API_BIND    the node's API address (default 127.0.0.1:9443; 127.0.0.1:0 = any free port)
#   DEMO_ROUTER_BIND the node's TLS router address (default 127.0.0.1:8443)
#   DEMO_LOCALTEST_PORT  the port of `mse localtest`'s enclave (default: its own, 5000)
#   DEMO_VENV        an existing virtualenv with Flask, pytest and requests, used as the app's
#                    environment by both `mse localtest` and the node instead of building one
#                    with pip (tests use the pinned test venv: offline and fast)
#   DEMO_LAUNCHER    "process" (default: enclaves are host processes) or "vm" (each enclave is a
#                    QEMU VM booted from the guest image, the simulated TEE inside; slow under TCG)
#   DEMO_VM_IMAGE    the guest image for DEMO_LAUNCHER=vm (default: target/image, `make image`)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=$(realpath "${MSE_BIN_DIR:-$ROOT/target/debug}")
OUT=${DEMO_OUT:-$ROOT/demo-out}
API_BIND=${DEMO_API_BIND:-127.0.0.1:9443}
ROUTER_BIND=${DEMO_ROUTER_BIND:-127.0.0.1:8443}
DEMO_VENV=${DEMO_VENV:-}
LAUNCHER=${DEMO_LAUNCHER:-process}
VM_IMAGE=${DEMO_VM_IMAGE:-$ROOT/target/image}
case "$LAUNCHER" in
    process) ;;
    vm) [ -f "$VM_IMAGE/image.json" ] || { echo "demo: no guest image in $VM_IMAGE (run: make image)" >&2; exit 1; } ;;
    *) echo "demo: DEMO_LAUNCHER=$LAUNCHER: expected \"process\" or \"vm\"" >&2; exit 1 ;;
esac

for b in mse mse-node mse-enclave; do
    [ -x "$BIN_DIR/$b" ] || { echo "demo: $BIN_DIR/$b missing (run: cargo build --workspace --bins)" >&2; exit 1; }
done
# The demo wipes its directory: never one it did not make (but for the repository's demo-out/).
if [ "$OUT" != "$ROOT/demo-out" ] && [ -d "$OUT" ] && [ -n "$(ls -A "$OUT")" ] && [ ! -f "$OUT/.mse-demo" ]; then
    echo "demo: $OUT is not empty and was not made by the demo: refusing to wipe it (set DEMO_OUT to another directory)" >&2
    exit 1
fi
if [ -n "$DEMO_VENV" ] && [ ! -x "$DEMO_VENV/bin/python" ]; then
    echo "demo: DEMO_VENV=$DEMO_VENV has no bin/python" >&2
    exit 1
fi

# ---------------------------------------------------------------------------------------------
# Presentation and checks

if [ -t 1 ]; then B=$'\e[1m' D=$'\e[2m' R=$'\e[31m' G=$'\e[32m' N=$'\e[0m'; else B="" D="" R="" G="" N=""; fi
step_no=0
step_name=""
step() {
    step_no=$((step_no + 1))
    step_name=$1
    shift
    printf '\n%s== Step %d: %s%s\n' "$B" "$step_no" "$step_name" "$N"
    for line in "$@"; do printf '   %s\n' "$line"; done
}
# Shows a command as a user would type it (with the short names of the binaries), then runs it.
show() { printf '%s$ %s%s\n' "$D" "$*" "$N"; }
ok() { printf '%s   ok: %s%s\n' "$G" "$1" "$N"; }
fail() {
    printf '%sDEMO FAILED at step %d (%s): %s%s\n' "$R" "$step_no" "$step_name" "$1" "$N" >&2
    exit 1
}
# expect_contains FILE TEXT WHAT: the step's output must contain TEXT.
expect_contains() {
    grep -qF -- "$2" "$1" || { cat "$1" >&2; fail "$3: expected \"$2\" in the output above"; }
}
# The value after a prefix on the first line that has it ("  id:          X" -> X).
field() { awk -v p="$2" 'index($0, p) == 1 { v = substr($0, length(p) + 1); gsub(/^[ \t]+|[ \t]+$/, "", v); print v; exit }' "$1"; }

mse() { "$BIN_DIR/mse" "$@"; }
mse_node() { "$BIN_DIR/mse-node" "$@"; }

node_pid=""
cleanup() {
    rc=$?
    if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
        echo "demo: stopping the node (pid $node_pid)" >&2
        kill "$node_pid" 2>/dev/null || true
        wait "$node_pid" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -f "$OUT/node.log" ]; then
        echo "demo: the last lines of the node's log ($OUT/node.log):" >&2
        tail -n 15 "$OUT/node.log" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
step "a clean working directory" \
    "Everything the demo makes goes to $OUT; your own MSE configuration is left alone because" \
    "the CLI keeps its login and deployment contexts in MSE_CONFIG_DIR, set here to $OUT/config."
mkdir -p "$OUT"
find "$OUT" -mindepth 1 -maxdepth 1 ! -name cache ! -name .mse-demo -exec rm -rf {} +
touch "$OUT/.mse-demo"
mkdir -p "$OUT/cache/node-venvs" "$OUT/node-data"
export MSE_CONFIG_DIR="$OUT/config"
cd "$OUT"
ok "$OUT is empty (but for its cache)"

# ---------------------------------------------------------------------------------------------
step "start a node" \
    "mse-node is the host side: it stores the encrypted code, starts one enclave (mse-enclave)" \
    "per app and routes TLS connections to them by server name, without decrypting them." \
    "This machine has no SGX, so the node runs a SIMULATED TEE: the whole protocol, no protection."
if [ "$LAUNCHER" = vm ]; then
    echo "   DEMO_LAUNCHER=vm: each enclave is a QEMU VM booted from the guest image ($VM_IMAGE),"
    echo "   its code, environment and launch spec attached as read-only disks that the guest checks"
    echo "   against the spec hash on its kernel command line (TCG here: boots take seconds)."
fi
{
    echo "# The demo's node: embedded defaults but for the data dir (and the addresses if set)."
    echo "data_dir = \"node-data\""
    echo "api_bind = \"$API_BIND\""
    echo "router_bind = \"$ROUTER_BIND\""
    if [ "$LAUNCHER" = vm ]; then
        echo "launcher = \"vm\""
        echo "vm_image = \"$VM_IMAGE\""
        echo "spawn_timeout_secs = 600"
    fi
    if [ -n "$DEMO_VENV" ]; then
        printf '\n[[environment]]\nname = "mse-flask"\nvenv = "%s"\n' "$DEMO_VENV"
    fi
} > node.toml
# The node's virtualenvs (Flask for `docker = "mse-flask"`, built with pip at first use) survive
# from one demo to the next.
ln -s ../cache/node-venvs node-data/venvs
show "cat node.toml"
sed 's/^/   /' node.toml
show "mse-node serve --config node.toml &"
"$BIN_DIR/mse-node" serve --config node.toml > node.out 2> node.log &
node_pid=$!
for _ in $(seq 100); do
    [ -s node.out ] && break
    kill -0 "$node_pid" 2>/dev/null || fail "the node exited at start"
    sleep 0.1
done
cat node.out
# "mse-node: API on http://A , router on R , data in D"
API=$(awk '{print $4}' node.out)
ROUTER=$(awk '{print $8}' node.out)
[ -n "$API" ] && [ -n "$ROUTER" ] || fail "the node did not print its addresses"
PORT=${ROUTER##*:}
ok "node (pid $node_pid): API on $API, TLS router on $ROUTER"

# ---------------------------------------------------------------------------------------------
step "create a project and log in" \
    "The node's operator creates a project; its bearer token lets the developer deploy." \
    "mse login checks the token against the node and keeps it (mode 0600) in MSE_CONFIG_DIR."
show "mse-node project create default --config node.toml"
TOKEN=$(mse_node project create default --config node.toml 2> project.err) || { cat project.err >&2; fail "project create"; }
cat project.err
echo "   (the token is printed on stdout once; the demo keeps it in \$TOKEN and does not show it)"
show "mse login --url $API --token \"\$TOKEN\""
mse login --url "$API" --token "$TOKEN" | tee login.out || fail "mse login failed"
expect_contains login.out "Logged in to $API (project default)" "mse login"
ok "logged in"

# ---------------------------------------------------------------------------------------------
step "scaffold the app" \
    "mse scaffold writes a plain Flask app (mse_src/app.py: /, /health, /whoami that reads" \
    "the secrets, /date that writes then reads a file in the app's encrypted HOME), its" \
    "mse.toml, a secrets.json (sent only to the verified enclave, never in the code) and tests."
show "mse scaffold helloworld"
mse scaffold helloworld || fail "mse scaffold failed"
cd helloworld
show "cat secrets.json"
sed 's/^/   /' secrets.json
LOGIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["login"])' secrets.json)
grep -q '^@app.post("/date")' mse_src/app.py || fail "the scaffolded app has no POST /date route"
ok "app helloworld scaffolded (its secret login is \"$LOGIN\")"

# ---------------------------------------------------------------------------------------------
step "test the app locally in an enclave" \
    "mse localtest runs the app exactly as a node would: packaged and encrypted, in mse-enclave" \
    "(simulated TEE), verified by remote attestation, given its key and secrets, then runs the" \
    "app's own tests (tests/) against it over the verified TLS."
if [ -n "$DEMO_VENV" ]; then
    export MSE_LOCALTEST_VENV="$DEMO_VENV" MSE_LOCALTEST_TESTS_VENV="$DEMO_VENV"
    echo "   (using the virtualenv $DEMO_VENV instead of building one with pip)"
else
    echo "   (the first run builds the app's virtualenv with pip, cached in ~/.cache/mse)"
fi
localtest=(localtest)
[ -z "${DEMO_LOCALTEST_PORT:-}" ] || localtest+=(--port "$DEMO_LOCALTEST_PORT")
[ "$LAUNCHER" != vm ] || localtest+=(--vm --vm-image "$VM_IMAGE")
show "mse ${localtest[*]}"
mse "${localtest[@]}" 2>&1 | tee ../localtest.out || fail "mse localtest failed"
expect_contains ../localtest.out "Tests passed." "mse localtest"
ok "the app passes its tests inside a local enclave"

# ---------------------------------------------------------------------------------------------
step "deploy to the node" \
    "mse deploy encrypts the code with a fresh key, uploads it, waits for the enclave, fetches" \
    "its RA-TLS certificate through the router, checks the attestation and recomputes the" \
    "expected measurement locally; only then it sends the code key and the secrets, over TLS" \
    "pinned to that very certificate. -y replaces an app of the same name without asking."
show "mse deploy -y"
mse deploy -y | tee ../deploy.out || fail "mse deploy failed"
expect_contains ../deploy.out "WARNING: this node declares a SIMULATED TEE" "mse deploy"
expect_contains ../deploy.out "(recomputed locally: match)" "mse deploy"
expect_contains ../deploy.out "Sent the code key, the secrets to the attested enclave" "mse deploy"
expect_contains ../deploy.out "App helloworld is running (" "mse deploy"
ID=$(field ../deploy.out "  id:")
URL=$(field ../deploy.out "  url:")
CERT=$(field ../deploy.out "  certificate:")
MEASUREMENT=$(field ../deploy.out "Enclave verified: SIMULATED TEE, measurement " | cut -d' ' -f1)
DOMAIN=$ID.localhost
[ "$URL" = "https://$DOMAIN:$PORT" ] || fail "deploy printed url \"$URL\", expected https://$DOMAIN:$PORT"
[ -f "$CERT" ] || fail "deploy's certificate $CERT is not a file"
ok "app $ID is running at $URL"
cd ..

# ---------------------------------------------------------------------------------------------
step "verify the app as any user would" \
    "mse verify connects to the app, takes its certificate, and checks the attestation evidence" \
    "in it against the measurement published by the developer (--fingerprint). A simulated TEE" \
    "is refused unless --allow-simulation is given, and then the verdict says so." \
    "(<id>.localhost does not resolve here: --connect sends the connection to the router.)"
show "mse verify $DOMAIN:$PORT --connect $ROUTER --allow-simulation --pccs-url $API/pccs --fingerprint $MEASUREMENT"
mse verify "$DOMAIN:$PORT" --connect "$ROUTER" --allow-simulation --pccs-url "$API/pccs" \
    --fingerprint "$MEASUREMENT" | tee verify.out || fail "mse verify failed"
expect_contains verify.out "Warning:      simulated TEE: no hardware protection, for local testing only" "mse verify"
expect_contains verify.out "Measurement:  $MEASUREMENT" "mse verify"
[ "$(tail -n 1 verify.out)" = "Verdict:      TRUSTED" ] || fail "mse verify: the last line is not \"Verdict:      TRUSTED\""
ok "trusted (as a simulation)"

# ---------------------------------------------------------------------------------------------
step "call the app with curl" \
    "curl trusts only the enclave's verified certificate (--cacert); TLS ends inside the" \
    "enclave, so neither the node nor the network sees the requests. --resolve sends" \
    "$DOMAIN to the router's address."
CURL=(curl -sS --max-time 20 --cacert "$CERT" --resolve "$DOMAIN:$PORT:127.0.0.1")
# call METHOD PATH: prints "STATUS BODY" on one line.
call() {
    "${CURL[@]}" -X "$1" -o body.out -w '%{http_code}' "$URL$2" > code.out || fail "curl -X $1 $URL$2"
    printf '%s %s' "$(cat code.out)" "$(cat body.out)"
}
show "curl --cacert $CERT --resolve $DOMAIN:$PORT:127.0.0.1 $URL/whoami"
got=$(call GET /whoami)
echo "   -> $got"
[ "$got" = "200 $LOGIN" ] || fail "GET /whoami answered \"$got\", expected \"200 $LOGIN\""
ok "/whoami answers the login from secrets.json, which only the enclave received"

echo "   The date routes: POST /date writes the time to a file in the app's HOME (encrypted, in"
echo "   the enclave), GET /date reads it and deletes it, so a second GET finds nothing."
show "curl … -X POST $URL/date"
got=$(call POST /date)
echo "   -> $got"
[ "$got" = "200 " ] || fail "POST /date answered \"$got\", expected \"200 \""
show "curl … $URL/date"
got=$(call GET /date)
echo "   -> $got"
[[ "$got" =~ ^200\ 20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]\ [0-9:.]+$ ]] || fail "GET /date answered \"$got\", expected 200 and a date"
show "curl … $URL/date"
got=$(call GET /date)
echo "   -> $got"
[ "$got" = "404 You should write before read" ] || fail "GET /date answered \"$got\", expected \"404 You should write before read\""
ok "write, read, then 404 \"You should write before read\""

# ---------------------------------------------------------------------------------------------
step "read the app's logs" \
    "The node keeps the last 64 kB of the enclave's output: the app's access log is there."
show "mse logs $ID"
mse logs "$ID" > logs.out || fail "mse logs failed"
grep -E '"(GET /whoami|POST /date|GET /date) HTTP/' logs.out | sed 's/^/   /' || true
grep -qE '"GET /whoami HTTP/[0-9.]+" 200 ' logs.out || fail "mse logs: no \"GET /whoami\" 200 line"
grep -qE '"POST /date HTTP/[0-9.]+" 200 ' logs.out || fail "mse logs: no \"POST /date\" 200 line"
grep -qE '"GET /date HTTP/[0-9.]+" 404 ' logs.out || fail "mse logs: no \"GET /date\" 404 line"
ok "the requests are in the log"

# ---------------------------------------------------------------------------------------------
step "stop the app" \
    "mse stop asks the node to stop the enclave; the node erases its sealed storage."
show "mse stop $ID"
mse stop "$ID" | tee stop.out || fail "mse stop failed"
[ "$(cat stop.out)" = "App $ID is stopped" ] || fail "mse stop printed \"$(cat stop.out)\""
show "mse status $ID"
mse status "$ID" > status.out || fail "mse status failed"
grep -E '^(Status|Exit reason):' status.out | sed 's/^/   /'
expect_contains status.out "Status:       stopped" "mse status"
expect_contains status.out "Exit reason:  stopped by its owner" "mse status"
ok "app $ID is stopped"

# ---------------------------------------------------------------------------------------------
step "stop the node" \
    "SIGTERM makes the node stop its enclaves and exit."
show "kill $node_pid"
kill "$node_pid"
rc=0
wait "$node_pid" || rc=$?
node_pid=""
[ "$rc" -eq 0 ] || fail "the node exited with code $rc"
grep -q "shutting down" node.log || fail "no \"shutting down\" in the node's log"
ok "the node stopped cleanly"

printf '\n%sDemo complete: every step gave the expected result.%s\n' "$B" "$N"
echo "Outputs of each step are in $OUT (node.log is the node's log)."
