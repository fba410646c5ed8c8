#!/usr/bin/env bash
# Container healthcheck: exit 0 when an HTTP URL answers 2xx (or, for tcp://HOST:PORT,
# when the port accepts a connection), else 1 with one line why.
#
#   bash /app/healthcheck.sh http://127.0.0.1:8000/healthz | tcp://locust-master:5557
#
# Bash alone, builtins only (/dev/tcp, printf, read): Docker runs this in every container
# every interval, and one process is as cheap as a check gets -- measured here, a Python
# check costs about twice the CPU of this one (benchmarks/bench_healthcheck.py).
# A hung peer is cut by `read -t` here and by the healthcheck's own timeout in compose.

url=${1-}
case $url in
    http://*) scheme=http rest=${url#http://} ;;
    tcp://*) scheme=tcp rest=${url#tcp://} ;;
    *) echo "usage: healthcheck.sh http://HOST:PORT/PATH | tcp://HOST:PORT" >&2; exit 2 ;;
esac
hostport=${rest%%/*}
path=${rest#"$hostport"}
path=${path:-/}
host=${hostport%:*}
port=${hostport##*:}
[[ $hostport == *:* ]] || port=80

unhealthy() { echo "unhealthy: $url: $1" >&2; exit 1; }

if ! { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then
    # Failing already: a second try in a subshell gives bash's reason (the first of the
    # two lines it prints, e.g. "Connection refused"); ours stays one line.
    reason=$( { exec 3<>"/dev/tcp/$host/$port"; } 2>&1 )
    reason=${reason%%$'\n'*}
    unhealthy "${reason##*: }"
fi
[[ $scheme == tcp ]] && exit 0

printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$host" >&3 2>/dev/null \
    || unhealthy "connection closed"
read -r -t 2 status <&3 || unhealthy "no answer"
status=${status%$'\r'}
[[ $status =~ ^HTTP/1\.[01]\ 2[0-9][0-9] ]] || unhealthy "$status"
exit 0
