#!/usr/bin/env bash
# Makes sure what the tests need is there: Chromium and ChromeDriver for the browser tests, and
# answering servers: PostgreSQL (TEST_DATABASE_URL, default
# 127.0.0.1:5432, user postgres, trust auth) and RabbitMQ (TEST_AMQP_URL, default
# 127.0.0.1:5672, guest/guest). Starts a local server that is installed but stopped;
# on a bare Debian/Ubuntu machine, as root, installs it with apt-get first; anywhere else stops
# with one line saying what is missing.
set -euo pipefail

PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
AMQP_HOST=${AMQP_HOST:-127.0.0.1}
AMQP_PORT=${AMQP_PORT:-5672}

say() { echo "ensure-services: $*"; }
die() { echo "ensure-services: $*" >&2; exit 1; }

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

wait_until() { # wait_until <seconds> <command...>
  local limit=$1; shift
  for _ in $(seq 1 "$limit"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  return 1
}

pg_answers() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }

ensure_postgres() {
  if command -v pg_isready >/dev/null 2>&1 && pg_answers; then return 0; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    can_apt || die "PostgreSQL is not answering at $PG_HOST:$PG_PORT: install PostgreSQL 13+ (or set TEST_DATABASE_URL)"
    say "installing PostgreSQL with apt-get"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
    local conf
    conf=$(ls -d /etc/postgresql/*/main | head -n1)
    # A machine for tests: local connections without a password, as the test URL expects.
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/; s/^(local\s+all\s+all\s+)\S+/\1trust/' "$conf/pg_hba.conf"
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  wait_until 30 pg_answers || die "PostgreSQL did not start answering at $PG_HOST:$PG_PORT"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
amqp_answers() { port_open "$AMQP_HOST" "$AMQP_PORT"; }

ensure_rabbitmq() {
  if amqp_answers; then return 0; fi
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    can_apt || die "RabbitMQ is not answering at $AMQP_HOST:$AMQP_PORT: install RabbitMQ 3.12+ (or set TEST_AMQP_URL)"
    say "installing RabbitMQ with apt-get"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server >/dev/null
  fi
  say "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_until 90 amqp_answers || die "RabbitMQ did not start answering at $AMQP_HOST:$AMQP_PORT"
  # The port opens before the broker accepts logins; wait for the application itself.
  command -v rabbitmqctl >/dev/null 2>&1 && wait_until 60 rabbitmqctl -q await_startup || true
}

# The S3 media store's test talks to moto's S3-compatible server (from PyPI, in a cached
# virtualenv) at TEST_S3_URL, default 127.0.0.1:4566.
S3_HOST=${S3_HOST:-127.0.0.1}
S3_PORT=${S3_PORT:-4566}
s3_answers() { port_open "$S3_HOST" "$S3_PORT"; }

ensure_s3() {
  if s3_answers; then return 0; fi
  local venv=${XDG_CACHE_HOME:-$HOME/.cache}/heydoc/moto-venv
  if [ ! -x "$venv/bin/moto_server" ]; then
    command -v python3 >/dev/null 2>&1 || die "python3 is missing: it runs moto, the S3-compatible server the media store's test uses"
    say "installing moto (an S3-compatible test server) into $venv"
    python3 -m venv "$venv" || die "python3 -m venv failed: install python3-venv"
    "$venv/bin/pip" install -q "moto[server]==5.1.*" || die "pip could not install moto[server]"
  fi
  say "starting moto's S3 server at $S3_HOST:$S3_PORT"
  setsid "$venv/bin/moto_server" -H "$S3_HOST" -p "$S3_PORT" >"${TMPDIR:-/tmp}/heydoc-moto.log" 2>&1 < /dev/null &
  wait_until 60 s3_answers || die "moto did not start answering at $S3_HOST:$S3_PORT (see ${TMPDIR:-/tmp}/heydoc-moto.log)"
}

# The dashboard's browser tests drive Debian's headless Chromium through chromedriver
# (CHROMIUM and CHROMEDRIVER override where they are).
ensure_chromium() {
  local driver=${CHROMEDRIVER:-/usr/bin/chromedriver} browser=${CHROMIUM:-/usr/bin/chromium}
  if [ -x "$driver" ] && [ -x "$browser" ]; then return 0; fi
  can_apt || die "Chromium and ChromeDriver are missing ($browser, $driver): install Debian's chromium and chromium-driver (or set CHROMIUM and CHROMEDRIVER)"
  say "installing Chromium and ChromeDriver with apt-get"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
  [ -x "$driver" ] && [ -x "$browser" ] || die "apt-get did not install $browser and $driver"
}

# The accessibility audit injects axe-core (npm, pinned in tests/axe/package-lock.json) into
# the pages the browser tests open.
ensure_axe() {
  local dir; dir="$(cd "$(dirname "$0")/../../tests/axe" && pwd)"
  if [ -f "$dir/node_modules/axe-core/axe.min.js" ]; then return 0; fi
  if ! command -v npm >/dev/null 2>&1; then
    can_apt || die "npm is missing: install Node.js and npm (the accessibility audit installs axe-core with it)"
    say "installing Node.js and npm with apt-get"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null
  fi
  say "installing axe-core into tests/axe"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
    || die "npm ci in tests/axe failed: the accessibility audit needs axe-core from the npm registry"
}

# A process test runs the scheduler with its host clock an hour ahead (libfaketime).
ensure_faketime() {
  if ls /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 >/dev/null 2>&1; then return 0; fi
  can_apt || die "libfaketime is missing: install Debian's faketime package (a test runs the scheduler with its clock an hour ahead)"
  say "installing faketime with apt-get"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q faketime >/dev/null
}

# The test runner: cargo-nextest runs every binary's tests in one pool (.config/nextest.toml).
ensure_nextest() {
  if cargo nextest --version >/dev/null 2>&1; then return 0; fi
  say "installing cargo-nextest from crates.io (a few minutes, once)"
  cargo install --locked cargo-nextest >/dev/null 2>&1 \
    || die "cargo-nextest is missing and could not be installed: run cargo install --locked cargo-nextest"
}

ensure_nextest
say "cargo-nextest is installed"
ensure_postgres
say "PostgreSQL answers at $PG_HOST:$PG_PORT"
ensure_faketime
say "libfaketime is installed"
ensure_rabbitmq
say "RabbitMQ answers at $AMQP_HOST:$AMQP_PORT"
ensure_chromium
say "Chromium and ChromeDriver are installed"
ensure_s3
say "an S3-compatible server answers at $S3_HOST:$S3_PORT"
ensure_axe
say "axe-core is installed for the accessibility audit"
