#!/usr/bin/env bash
# Start the servers the tests use (PostgreSQL, Redis) on loopback and print the env to use them.
# Idempotent: safe to run again while they are up.  Source it: `source .ci/services.sh`.
set -euo pipefail

PGVER=$(ls /usr/lib/postgresql | sort -V | tail -1)
PGBIN=/usr/lib/postgresql/$PGVER/bin
PGDATA=${TSUBA_CI_PGDATA:-/tmp/tsuba-ci-pg}
PGPORT=${TSUBA_CI_PGPORT:-55432}
REDIS_PORT=${TSUBA_CI_REDIS_PORT:-56379}

if ! su postgres -s /bin/sh -c "$PGBIN/pg_isready -q -h 127.0.0.1 -p $PGPORT" 2>/dev/null; then
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    rm -rf "$PGDATA"; mkdir -p "$PGDATA"; chown postgres:postgres "$PGDATA"
    su postgres -s /bin/sh -c "$PGBIN/initdb -D $PGDATA -A trust -U postgres" >/dev/null 2>&1
  fi
  su postgres -s /bin/sh -c "$PGBIN/pg_ctl -s -D $PGDATA -l $PGDATA/server.log \
    -o '-c listen_addresses=127.0.0.1 -p $PGPORT -c unix_socket_directories=/tmp -c fsync=on' \
    -w start"
fi
export TSUBA_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$PGPORT/postgres"

if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --logfile /tmp/tsuba-ci-redis.log >/dev/null
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
export TSUBA_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

SOFTHSM_LIB=$(ls /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so 2>/dev/null | head -1 || true)
[ -n "$SOFTHSM_LIB" ] && export TSUBA_TEST_PKCS11_MODULE="$SOFTHSM_LIB"
echo "services: postgres :$PGPORT, redis :$REDIS_PORT, softhsm ${SOFTHSM_LIB:-absent}"
