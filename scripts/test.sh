#!/usr/bin/env bash
# Run the whole test suite. Extra arguments go to pytest, e.g.
#   scripts/test.sh -x -k rollout
#   scripts/test.sh -m "not e2e"
#
# Unless DATABASE_URL / REDIS_URL are already set, starts a throwaway PostgreSQL and Redis on
# free loopback ports (data in a temporary directory) and stops them again on exit.
# As root, installs missing Debian packages (postgresql, redis-server, chromium) first.
# Exits with pytest's exit code.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "test.sh: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}
is_root() { [[ $(id -u) -eq 0 ]]; }

# --- virtualenv -------------------------------------------------------------------------------
if [[ ! -x .venv/bin/python ]]; then
    say "creating .venv"
    python3 -m venv .venv
fi
stamp=.venv/.installed-test
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    say "installing the project into .venv (pip install -e '.[test]')"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    touch "$stamp"
fi

# --- Debian packages (only when something is missing) -----------------------------------------
# Newest /usr/lib/postgresql/*/bin, or nothing.
pg_bin() {
    local d
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    if [[ -d $d ]]; then echo "$d"; fi
}

missing=()
if [[ -z ${DATABASE_URL:-} && -z $(pg_bin) ]]; then
    is_root || die "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin): run" \
        "'sudo apt-get install postgresql', or set DATABASE_URL to an existing server."
    missing+=(postgresql)
fi
if [[ -z ${REDIS_URL:-} ]] && ! command -v redis-server >/dev/null; then
    is_root || die "redis-server is not installed: run 'sudo apt-get install redis-server'," \
        "or set REDIS_URL to an existing server."
    missing+=(redis-server)
fi
if [[ ! -x /usr/bin/chromium ]]; then
    if is_root; then
        missing+=(chromium chromium-driver)
    else
        say "WARNING: /usr/bin/chromium is missing, so the browser (e2e) tests will fail."
        say "WARNING: install it with: sudo apt-get install chromium chromium-driver"
    fi
fi
if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
fi
# The live Prometheus gate test runs Debian's server (its recommends are not needed).
if ! command -v prometheus >/dev/null; then
    if is_root; then
        say "installing Debian package: prometheus"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 prometheus >/dev/null
    else
        say "WARNING: prometheus is missing, so the live Prometheus gate test will fail."
        say "WARNING: install it with: sudo apt-get install --no-install-recommends prometheus"
    fi
fi

# --- throwaway servers -----------------------------------------------------------------------
tmp=""
pg_started=""
redis_port=""

# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    local rc=$?
    trap - EXIT
    if [[ -n $pg_started ]]; then
        as_pg "$PGBIN/pg_ctl" -D "$tmp/pgdata" -m immediate stop >/dev/null 2>&1 ||
            say "warning: could not stop PostgreSQL (data dir $tmp/pgdata)"
    fi
    if [[ -n $redis_port ]]; then
        redis-cli -h 127.0.0.1 -p "$redis_port" shutdown nosave >/dev/null 2>&1 ||
            { [[ -f $tmp/redis.pid ]] && kill "$(cat "$tmp/redis.pid")" 2>/dev/null; } ||
            say "warning: could not stop Redis on port $redis_port"
    fi
    if [[ -n $tmp ]]; then
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run a command as the postgres user when root (initdb and pg_ctl refuse to run as root).
as_pg() {
    if is_root; then
        (cd "$tmp" && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Print the first port >= $1 (and below 32768, outside the ephemeral range) that is free on
# 127.0.0.1.
free_port() {
    .venv/bin/python - "$1" <<'PY'
import socket
import sys

for port in range(int(sys.argv[1]), 32768):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Like PostgreSQL and Redis themselves: a port only in TIME_WAIT counts as free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
else:
    sys.exit("no free port on 127.0.0.1 below 32768")
PY
}

if [[ -z ${DATABASE_URL:-} || -z ${REDIS_URL:-} ]]; then
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/releasecontrol-test.XXXXXX")
fi

if [[ -z ${DATABASE_URL:-} ]]; then
    PGBIN=$(pg_bin)
    if is_root; then
        chown postgres:postgres "$tmp"
    fi
    as_pg "$PGBIN/initdb" -D "$tmp/pgdata" -U postgres -A trust --no-sync -E UTF8 \
        --locale=C.UTF-8 >"$tmp/initdb.log" 2>&1 || {
        cat "$tmp/initdb.log" >&2
        die "initdb failed"
    }
    port=25432
    for _ in 1 2 3 4 5; do
        port=$(free_port "$port")
        opts="-p $port -k $tmp -c listen_addresses=127.0.0.1 -c fsync=off"
        opts+=" -c synchronous_commit=off -c full_page_writes=off"
        if as_pg "$PGBIN/pg_ctl" -D "$tmp/pgdata" -l "$tmp/postgres.log" -w -t 30 -o "$opts" \
            start >/dev/null; then
            pg_started=1
            break
        fi
        port=$((port + 1)) # lost a race for the port: try the next one
    done
    if [[ -z $pg_started ]]; then
        cat "$tmp/postgres.log" >&2 || true
        die "could not start PostgreSQL"
    fi
    "$PGBIN/psql" -h "$tmp" -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE app LOGIN PASSWORD 'app' CREATEDB" \
        -c "CREATE DATABASE app OWNER app" >/dev/null
    export DATABASE_URL="postgres://app:app@127.0.0.1:$port/app"
    say "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
fi

if [[ -z ${REDIS_URL:-} ]]; then
    port=26379
    for _ in 1 2 3 4 5; do
        port=$(free_port "$port")
        rm -f "$tmp/redis.pid"
        redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --save '' \
            --appendonly no --dir "$tmp" --pidfile "$tmp/redis.pid" \
            --logfile "$tmp/redis.log" >/dev/null
        # --daemonize returns before the server listens: wait for it (or for it to give up).
        for _ in $(seq 50); do
            # Check that the server answering is ours, not one that won a race for the port.
            if [[ -s $tmp/redis.pid ]] &&
                redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null | tr -d '\r' |
                grep -x "process_id:$(cat "$tmp/redis.pid")" >/dev/null; then
                redis_port=$port
                break 2
            fi
            sleep 0.1
        done
        if [[ -s $tmp/redis.pid ]]; then # ours, but not answering: do not leave it behind
            kill "$(cat "$tmp/redis.pid")" 2>/dev/null || true
        fi
        port=$((port + 1))
    done
    if [[ -z $redis_port ]]; then
        cat "$tmp/redis.log" >&2 || true
        die "could not start Redis"
    fi
    export REDIS_URL="redis://127.0.0.1:$redis_port/0"
    say "Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) on 127.0.0.1:$redis_port"
fi
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-$REDIS_URL}"

# --- tests -----------------------------------------------------------------------------------
rc=0
.venv/bin/python -m pytest "$@" || rc=$?
exit "$rc"
