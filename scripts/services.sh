# shellcheck shell=bash
# Throwaway PostgreSQL and Redis on loopback for the tests; Chromium for the browser tests.
# Sourced by scripts/test.sh. Exports GEARSHIFT_TEST_POSTGRES_URL, GEARSHIFT_TEST_REDIS_URL and
# GEARSHIFT_TEST_CHROMIUM.

_need_apt() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v chromium >/dev/null || missing+=(chromium)
  if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then
      echo "services: missing ${missing[*]} and not root; install them with apt-get" >&2
      return 0
    fi
    echo "services: installing ${missing[*]} from Debian packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

services_up() {
  _need_apt
  SERVICES_DIR=$(mktemp -d /tmp/gearshift-services.XXXXXX)
  export SERVICES_DIR
  if command -v redis-server >/dev/null; then
    local rport; rport=$(_free_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize yes --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log"
    export GEARSHIFT_TEST_REDIS_URL="redis://127.0.0.1:$rport/0"
  fi
  local initdb; initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1 || true)
  if [ -n "$initdb" ]; then
    local pgbin; pgbin=$(dirname "$initdb")
    local pport; pport=$(_free_port)
    local run=()
    # PostgreSQL refuses to run as root: run it as the unprivileged 'postgres' (or 'nobody') user.
    if [ "$(id -u)" = 0 ]; then
      local u=postgres; id "$u" >/dev/null 2>&1 || u=nobody
      chown "$u" "$SERVICES_DIR"; run=(runuser -u "$u" --)
    fi
    "${run[@]}" "$pgbin/initdb" -D "$SERVICES_DIR/pg" -U gearshift --auth=trust -E UTF8 >/dev/null
    "${run[@]}" "$pgbin/pg_ctl" -D "$SERVICES_DIR/pg" -l "$SERVICES_DIR/pg.log" -w \
      -o "-p $pport -k $SERVICES_DIR -h 127.0.0.1 -c fsync=off" start >/dev/null
    "$pgbin/createdb" -h 127.0.0.1 -p "$pport" -U gearshift gearshift_test
    export GEARSHIFT_TEST_POSTGRES_URL="postgresql://gearshift@127.0.0.1:$pport/gearshift_test"
    PGBIN=$pgbin; PGRUN=("${run[@]}")
  fi
  if command -v chromium >/dev/null; then export GEARSHIFT_TEST_CHROMIUM=$(command -v chromium); fi
}

services_down() {
  if [ -n "${PGBIN:-}" ]; then
    "${PGRUN[@]}" "$PGBIN/pg_ctl" -D "$SERVICES_DIR/pg" -m fast stop >/dev/null 2>&1 || true
  fi
  if [ -f "$SERVICES_DIR/redis.pid" ]; then kill "$(cat "$SERVICES_DIR/redis.pid")" 2>/dev/null || true; fi
  rm -rf "$SERVICES_DIR"
}
