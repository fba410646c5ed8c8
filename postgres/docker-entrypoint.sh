#!/usr/bin/env bash
# The offline postgres image's entrypoint: the official image's conventions on Debian's
# package, so that docker-compose.yml runs either image unchanged. POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_HOST_AUTH_METHOD, POSTGRES_INITDB_ARGS and
# PGDATA mean what they mean there; on an empty data directory it runs initdb and then
# /docker-entrypoint-initdb.d/*.sql (psql) and *.sh (sourced) once, on a temporary server
# reachable only through the Unix socket, as the official image does.
set -euo pipefail
shopt -s nullglob

if [ "${1:0:1}" = "-" ]; then
    set -- postgres "$@"
fi
if [ "$1" != "postgres" ]; then
    exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != "trust" ]; then
        echo "postgres: the database is uninitialized and POSTGRES_PASSWORD is not set" \
            "(or set POSTGRES_HOST_AUTH_METHOD=trust)" >&2
        exit 1
    fi
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of words, as upstream
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
            ${POSTGRES_INITDB_ARGS:-}
    else
        initdb --username="$user" ${POSTGRES_INITDB_ARGS:-}
    fi
    printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
    printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

    # PGHOST/PGPORT (unset in the image) move this socket-only server, for tests on a host.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}${PGHOST:+ -k $PGHOST}" \
        -w start
    psql=(psql -v ON_ERROR_STOP=1 --username "$user" --no-password --no-psqlrc)
    if [ "$db" != "postgres" ]; then
        "${psql[@]}" --dbname postgres --set db="$db" <<<'CREATE DATABASE :"db";'
    fi
    # shellcheck disable=SC1090  # the init scripts are the user's
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sql) echo "$0: running $f"; "${psql[@]}" --dbname "$db" -f "$f" ;;
            *.sh) echo "$0: sourcing $f"; . "$f" ;;
            *) echo "$0: ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "$0: PostgreSQL init process complete; ready for start up."
fi
exec "$@"
