#!/bin/sh
# Grafana's entrypoint, guarded: on a bind wider than loopback (LOADLAB_BIND), refuse to
# start unless GRAFANA_ADMIN_PASSWORD is set to something other than Grafana's "admin",
# and turn anonymous access off (on loopback anonymous visitors are Viewers). A password
# that is set is applied to the admin user of an existing database too: Grafana itself
# reads it only when it first creates that user, so a lab first run with admin/admin would
# keep admin/admin after the bind was widened.
set -eu
bind="${LOADLAB_BIND:-127.0.0.1}"
# The rule of loadlab.loopback.is_loopback (tests/test_security_defaults.py runs both).
case "$bind" in
    127.* | localhost | ::1 | "[::1]") widened=no ;;
    *) widened=yes ;;
esac

refuse() {
    echo "grafana: refusing to start: $1" >&2
    # Stay up, unhealthy, instead of exiting into a restart loop.
    [ "${LOADLAB_PARK_ON_ERROR:-1}" = 1 ] || exit 2
    trap 'exit 2' TERM INT
    while :; do sleep 3600 & wait $!; done
}

if [ "$widened" = yes ]; then
    case "${GF_SECURITY_ADMIN_PASSWORD:-}" in
        "" | admin)
            refuse "LOADLAB_BIND=$bind publishes Grafana beyond this machine; set GRAFANA_ADMIN_PASSWORD (not 'admin') in .env" ;;
    esac
    export GF_AUTH_ANONYMOUS_ENABLED=false
fi
if [ -n "${GF_SECURITY_ADMIN_PASSWORD:-}" ]; then
    # The image's own paths (its Dockerfile sets GF_PATHS_*); a new volume has no database
    # yet and takes the password when Grafana creates the admin user.
    data="${GF_PATHS_DATA:-/var/lib/grafana}"
    if [ -f "$data/grafana.db" ]; then
        # On stdin, never in argv (readable by every process through /proc).
        if ! out=$(printf '%s\n' "$GF_SECURITY_ADMIN_PASSWORD" | "${GRAFANA_CLI:-grafana}" cli \
                --homepath "${GF_PATHS_HOME:-/usr/share/grafana}" \
                --config "${GF_PATHS_CONFIG:-/etc/grafana/grafana.ini}" \
                admin reset-admin-password --password-from-stdin 2>&1); then
            refuse "could not set the admin password from GRAFANA_ADMIN_PASSWORD on the existing database ($(printf '%s\n' "$out" | tail -n 1))"
        fi
    fi
else
    unset GF_SECURITY_ADMIN_PASSWORD
fi
exec "${GRAFANA_ENTRYPOINT:-/run.sh}" "$@"
