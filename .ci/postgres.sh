#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1 for the catalog tests (tests/server/test_postgres.py).
#
#   export MLD_TEST_DATABASE_URL="$(bash .ci/postgres.sh start)"   # stdout: the URL only; logs on stderr
#   bash .ci/postgres.sh stop
#
# Installs Debian's postgresql with apt-get when no server binary is found (as root), initialises a
# cluster under $MLD_PG_STATE (default /tmp/mld-postgres) owned by a non-root user (postgres when
# run as root), and starts it on a free port with trust authentication for 127.0.0.1 only.
# When PostgreSQL cannot be installed it prints no URL and exits 0: the tests then skip and say why.
set -euo pipefail

STATE="${MLD_PG_STATE:-/tmp/mld-postgres}"

log() { echo "postgres.sh: $*" >&2; }

server_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return 0; fi
    return 1
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop() {
    if [ -f "$STATE/bin" ] && [ -d "$STATE/data" ]; then
        as_owner "$(cat "$STATE/bin")/pg_ctl" -D "$STATE/data" -m immediate -w stop >&2 || true
    fi
    rm -rf "$STATE"
}

start() {
    local bin port url
    if ! bin="$(server_bin)"; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            log "no PostgreSQL server found; installing Debian's postgresql"
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >&2 \
                || log "apt-get install postgresql failed"
        fi
        if ! bin="$(server_bin)"; then
            log "no PostgreSQL server binary could be found or installed; PostgreSQL tests will be skipped"
            exit 0
        fi
    fi
    stop
    mkdir -p "$STATE"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$STATE"
    fi
    port="$(free_port)"
    as_owner "$bin/initdb" -D "$STATE/data" -U postgres -A trust -E UTF8 --no-sync >"$STATE/initdb.log" 2>&1 \
        || { cat "$STATE/initdb.log" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$STATE/data" -l "$STATE/data/server.log" -w -t 60 \
        -o "-p $port -k $STATE -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" start >&2
    echo "$bin" >"$STATE/bin"
    url="postgresql://postgres@127.0.0.1:$port/postgres"
    log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on $url (data in $STATE/data)"
    echo "$url"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
