# Sourced by the node benchmarks (bench/node.sh, deploy.sh, node_load.sh): one local sim node.
#
# node_work: makes the working directory $work, removed at exit with the node ($node_pid)
# stopped and the /etc/hosts line $hosts_line (when a benchmark added one) taken out again.
node_work() {
    work=$(mktemp -d)
    node_pid=""
    hosts_line=""
    trap node_cleanup EXIT
}
node_cleanup() {
    [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true
    if [ -n "$hosts_line" ]; then
        grep -vxF "$hosts_line" /etc/hosts > "$work/hosts" || true
        cat "$work/hosts" > /etc/hosts
    fi
    rm -rf "$work"
}
#
# start_node WORK ENCLAVE VENV API_BIND ROUTER_BIND PROJECT [NODE]
# writes WORK/node.toml, creates PROJECT, starts the node in the background and waits for its
# startup line; sets node_pid, token, api (http://...) and router (HOST:PORT).
start_node() {
    local work=$1 enclave=$2 venv=$3 api_bind=$4 router_bind=$5 project=$6
    local node=${7:-$(dirname "$enclave")/mse-node}
    cat > "$work/node.toml" <<EOT
data_dir = "data"
api_bind = "$api_bind"
router_bind = "$router_bind"
enclave_bin = "$enclave"

[[environment]]
name = "mse-flask"
venv = "$venv"
EOT
    token=$("$node" project create "$project" --config "$work/node.toml" 2>/dev/null)
    RUST_LOG=${RUST_LOG:-warn} "$node" serve --config "$work/node.toml" > "$work/node.out" 2> "$work/node.err" &
    node_pid=$!
    for _ in $(seq 100); do grep -q "API on" "$work/node.out" 2>/dev/null && break; sleep 0.1; done
    grep -q "API on" "$work/node.out" || { echo "the node did not start:" >&2; cat "$work/node.err" >&2; return 1; }
    api=$(awk '{print $4}' "$work/node.out")
    router=$(awk '{print $8}' "$work/node.out")
}
