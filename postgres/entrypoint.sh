#!/bin/sh
# The lab's guard in front of the postgres image's own entrypoint (the official image's,
# or the offline image's docker-entrypoint.sh, which keeps its conventions).
#
# No client over TCP is ever trusted. The password of the database's user is
# POSTGRES_PASSWORD when set; otherwise one generated here, kept in LOADLAB_DB_AUTH_DIR
# (compose: a tmpfs volume the services and the exporter mount read-only, so it is never
# on disk) and reused while it is there. On every start the user's password is set to it
# (`postgres --single`, before the server listens), so changing POSTGRES_PASSWORD takes
# effect on the next start, also on a volume made earlier. A volume whose pg_hba.conf
# trusts TCP clients (made on loopback by an earlier version of the lab) is converted to
# password authentication on a loopback bind, and refused on a widened one
# (LOADLAB_BIND not loopback), with one line in the log.
set -eu
bind="${LOADLAB_BIND:-127.0.0.1}"
# The rule of loadlab.loopback.is_loopback (tests/test_security_defaults.py runs both).
case "$bind" in
    127.* | localhost | ::1 | "[::1]") widened=no ;;
    *) widened=yes ;;
esac
: "${PGDATA:=/var/lib/postgresql/data}"
user="${POSTGRES_USER:-postgres}"
auth_dir="${LOADLAB_DB_AUTH_DIR:-/run/loadlab/postgres}"

refuse() {
    echo "postgres: refusing to start: $*" >&2
    # Stay up, unhealthy, instead of exiting into a restart loop.
    [ "${LOADLAB_PARK_ON_ERROR:-1}" = 1 ] || exit 2
    trap 'exit 2' TERM INT
    while :; do sleep 3600 & wait $!; done
}

# pg_hba.conf lines that trust a TCP client from outside this container.
trusting_lines() {
    awk '$1 ~ /^host/ && $NF == "trust" && $4 != "127.0.0.1/32" && $4 != "::1/128" \
         && $4 != "localhost" {print}' "$PGDATA/pg_hba.conf"
}

# The password: POSTGRES_PASSWORD, else the one kept in the auth directory, else a new one.
password="${POSTGRES_PASSWORD:-}"
if [ -z "$password" ] && [ -s "$auth_dir/password" ]; then
    password=$(cat "$auth_dir/password")
fi
if [ -z "$password" ]; then
    password=$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)
fi
if [ -d "$auth_dir" ] && [ -w "$auth_dir" ]; then
    if [ "$(cat "$auth_dir/password" 2>/dev/null || true)" != "$password" ]; then
        # Readable by the services and the exporter (other uids) that mount this directory;
        # nothing else mounts it.
        (umask 022 && printf '%s' "$password" >"$auth_dir/password.tmp" \
            && mv -f "$auth_dir/password.tmp" "$auth_dir/password")
    fi
elif [ -z "${POSTGRES_PASSWORD:-}" ]; then
    refuse "no POSTGRES_PASSWORD and $auth_dir is not a writable directory to keep a generated one in; set POSTGRES_PASSWORD in .env"
fi
POSTGRES_PASSWORD="$password"
export POSTGRES_PASSWORD
# A client over TCP always gives the password (also from this container's loopback).
unset POSTGRES_HOST_AUTH_METHOD
POSTGRES_INITDB_ARGS="--auth-host=scram-sha-256 ${POSTGRES_INITDB_ARGS:-}"
export POSTGRES_INITDB_ARGS

if [ -s "$PGDATA/PG_VERSION" ]; then
    trusted=$(trusting_lines)
    if [ -n "$trusted" ]; then
        if [ "$widened" = yes ]; then
            refuse "LOADLAB_BIND=$bind publishes the database, and its volume's pg_hba.conf trusts every TCP client without a password ($(echo "$trusted" | head -n 1 | tr -s ' \t' ' ')); start it once on loopback (that converts it), or remove the volume (docker compose down -v)"
        fi
    fi
    # Every TCP client gives the password, this container's own loopback included (the
    # earlier initdb trusted it); the Unix socket keeps trust, for the image's scripts.
    if awk '$1 ~ /^host/ && $NF == "trust" {found = 1} END {exit !found}' \
            "$PGDATA/pg_hba.conf"; then
        echo "postgres: this volume's pg_hba.conf trusted TCP clients without a password; converted to scram-sha-256" >&2
        awk '$1 ~ /^host/ && $NF == "trust" {sub(/trust[ \t]*$/, "scram-sha-256")} {print}' \
            "$PGDATA/pg_hba.conf" >"$PGDATA/pg_hba.conf.tmp"
        mv -f "$PGDATA/pg_hba.conf.tmp" "$PGDATA/pg_hba.conf"
    fi
    # The user's password is what is configured now (single-user mode, nothing listens).
    quoted=$(printf '%s' "$password" | sed "s/'/''/g")
    if ! printf "ALTER ROLE \"%s\" PASSWORD '%s';\n" "$user" "$quoted" \
            | postgres --single -D "$PGDATA" -c listen_addresses= -c log_min_messages=fatal \
                postgres >/dev/null; then
        refuse "could not set the password of the database's user $user"
    fi
fi
exec "${POSTGRES_ENTRYPOINT:-docker-entrypoint.sh}" "$@"
