#!/usr/bin/env bash
# `make run`: start Azurite (HTTPS, with a self-signed certificate made here on first use) and
# sasgate on its shipped configuration. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p .azurite/data data
if [ ! -f .azurite/cert.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -keyout .azurite/key.pem -out .azurite/cert.pem -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature" -addext "extendedKeyUsage=serverAuth" 2>/dev/null
  echo "made a self-signed certificate for Azurite in .azurite/cert.pem"
fi

node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort 10000 --location .azurite/data \
  --cert .azurite/cert.pem --key .azurite/key.pem --oauth basic --loose --skipApiVersionCheck \
  --disableTelemetry >.azurite/azurite.log 2>&1 &
azurite=$!
trap 'kill $azurite 2>/dev/null || true' EXIT

# Wait for the emulator (polling, 30 s at most).
for _ in $(seq 1 300); do
  # Any HTTP answer (403 without credentials) means it is up.
  if curl -s --cacert .azurite/cert.pem -o /dev/null https://127.0.0.1:10000/devstoreaccount1?comp=list; then break; fi
  if ! kill -0 $azurite 2>/dev/null; then echo "Azurite failed to start:"; cat .azurite/azurite.log; exit 1; fi
  sleep 0.1
done

cargo build --quiet --release
./target/release/sasgate dev seed --config config/sasgate.toml
exec ./target/release/sasgate serve --config config/sasgate.toml
