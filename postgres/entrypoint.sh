#!/bin/sh
# The lab's guard in front of the postgres image's own entrypoint (the official image's,
# or the offline image's docker-entrypoint.sh, which keeps its conventions).
# On a loopback bind an empty POSTGRES_PASSWORD means trust authentication, like an
# anonymous Grafana viewer there; a bind wider than loopback (LOADLAB_BIND) publishes the
# database beyond this machine, and then it refuses to start without a password.
set -eu
bind="${LOADLAB_BIND:-127.0.0.1}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    case "$bind" in
        127.* | localhost | ::1 | "[::1]")
            POSTGRES_HOST_AUTH_METHOD=trust
            export POSTGRES_HOST_AUTH_METHOD ;;
        *)
            echo "postgres: refusing to start: LOADLAB_BIND=$bind publishes the database beyond this machine; set POSTGRES_PASSWORD in .env" >&2
            # Stay up, unhealthy, instead of exiting into a restart loop.
            [ "${LOADLAB_PARK_ON_ERROR:-1}" = 1 ] || exit 2
            trap 'exit 2' TERM INT
            while :; do sleep 3600 & wait $!; done ;;
    esac
fi
exec "${POSTGRES_ENTRYPOINT:-docker-entrypoint.sh}" "$@"
