#!/bin/sh
# Grafana's entrypoint, guarded: on a bind wider than loopback (LOADLAB_BIND), refuse to
# start unless GRAFANA_ADMIN_PASSWORD is set to something other than Grafana's "admin".
# On loopback an unset password leaves Grafana's own default, which it makes the admin
# change at first login. Anonymous visitors are Viewers either way (docker-compose.yml).
set -eu
bind="${LOADLAB_BIND:-127.0.0.1}"
# The rule of loadlab.loopback.is_loopback (tests/test_security_defaults.py runs both).
case "$bind" in
    127.* | localhost | ::1 | "[::1]") widened=no ;;
    *) widened=yes ;;
esac
if [ "$widened" = yes ]; then
    case "${GF_SECURITY_ADMIN_PASSWORD:-}" in
        "" | admin)
            echo "grafana: refusing to start: LOADLAB_BIND=$bind publishes Grafana beyond this machine; set GRAFANA_ADMIN_PASSWORD (not 'admin') in .env" >&2
            # Stay up, unhealthy, instead of exiting into a restart loop.
            [ "${LOADLAB_PARK_ON_ERROR:-1}" = 1 ] || exit 2
            trap 'exit 2' TERM INT
            while :; do sleep 3600 & wait $!; done ;;
    esac
fi
[ -n "${GF_SECURITY_ADMIN_PASSWORD:-}" ] || unset GF_SECURITY_ADMIN_PASSWORD
exec "${GRAFANA_ENTRYPOINT:-/run.sh}" "$@"
