# shellcheck shell=bash
# Sourced by .ci/run: start a Docker engine as its own session if none answers, wait for
# it, and stop it again when the sourcing script exits (by its PID, whatever the outcome).
# An engine that was already running is left alone. DOCKERD names the daemon (tests).

stop_engine() {
    local pid=${1:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

start_engine() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    local log=${LOADLAB_DOCKERD_LOG:-/tmp/loadlab-dockerd.log}
    setsid "${DOCKERD:-dockerd}" >"$log" 2>&1 </dev/null &
    loadlab_engine_pid=$!
    trap 'stop_engine "$loadlab_engine_pid"' EXIT
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    tail -n 20 "$log"
    exit 1
}
