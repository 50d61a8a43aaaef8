# shellcheck shell=bash
# Shared by scripts/run-dev.sh, scripts/schemathesis.sh and scripts/bench-common.sh (sourced, not
# run; from the repository root). Readiness is polled against a deadline, never slept for.

# wait_for PID SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds. Fails when PID
# (the process being waited for; 0 for none) has exited, or after SECONDS.
wait_for() {
  local pid=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" 2>/dev/null; do
    if [ "$pid" != 0 ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "process $pid exited while waiting for: $*" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "gave up after ${seconds}s waiting for: $*" >&2
      return 1
    fi
    sleep 0.1
  done
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# azurite_cert DIR: a self-signed certificate for 127.0.0.1 and localhost in DIR/cert.pem and
# DIR/key.pem, made on first use.
azurite_cert() {
  local dir=$1
  mkdir -p "$dir"
  [ -f "$dir/cert.pem" ] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature" -addext "extendedKeyUsage=serverAuth" 2>/dev/null
  echo "made a self-signed certificate for Azurite in $dir/cert.pem"
}

# azurite_start DIR PORT: starts Azurite's blob service over HTTPS on 127.0.0.1:PORT, with the
# certificate from azurite_cert DIR, its data in DIR/data and its log in DIR/azurite.log. Sets
# azurite_pid (set the caller's trap first) and returns once it answers (30 s at most).
azurite_start() {
  local dir=$1 port=$2
  azurite_cert "$dir"
  mkdir -p "$dir/data"
  node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort "$port" --location "$dir/data" \
    --cert "$dir/cert.pem" --key "$dir/key.pem" --oauth basic --loose --skipApiVersionCheck \
    --disableTelemetry >"$dir/azurite.log" 2>&1 &
  azurite_pid=$!
  # Any HTTP answer (403 without credentials) means it is up.
  if ! wait_for "$azurite_pid" 30 curl -s --cacert "$dir/cert.pem" -o /dev/null \
    "https://127.0.0.1:$port/devstoreaccount1?comp=list"; then
    echo "Azurite failed to start:" >&2
    cat "$dir/azurite.log" >&2
    return 1
  fi
}

# stop_and_show STATUS WORK PID...: stops (and reaps) each PID that is set; when STATUS is not 0,
# shows the end of WORK/sasgate.log, so that a failed run says why. For a script's EXIT trap.
stop_and_show() {
  local status=$1 work=$2 pid
  shift 2
  for pid in "$@"; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ "$status" -ne 0 ] && [ -f "$work/sasgate.log" ]; then
    echo "--- the last lines of sasgate's log ---" >&2
    tail -n 40 "$work/sasgate.log" >&2
  fi
  return 0
}

# pytools: the Python tools pinned in scripts/python-tools.txt (schemathesis, hadolint), exactly as
# pinned (hashes, no dependency resolution), in a venv at $PYTOOLS; reinstalled when the pins
# change. PYTHON picks the interpreter (default python3.11, which the pins are resolved for).
PYTOOLS=target/pytools
pytools() {
  local requirements=scripts/python-tools.txt
  if ! cmp -s "$requirements" "$PYTOOLS/installed-requirements.txt"; then
    rm -rf "$PYTOOLS"
    "${PYTHON:-python3.11}" -m venv "$PYTOOLS"
    "$PYTOOLS/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps \
      -r "$requirements"
    cp "$requirements" "$PYTOOLS/installed-requirements.txt"
  fi
}
