# syntax=docker/dockerfile:1
#
# sasgate container image (docs/operations.md, "Deployment with the image").
#
#   docker build -t sasgate .
#   docker run --rm sasgate config check          # validate the configuration baked in or mounted
#   docker run -d --name sasgate --read-only --tmpfs /tmp \
#     -v sasgate-ledger:/var/lib/sasgate \
#     -v "$PWD/deploy/sasgate.toml:/app/config/sasgate.toml:ro" \
#     -v "$PWD/deploy/policy:/app/policy:ro" \
#     -v "$PWD/deploy/tls:/run/tls:ro" \
#     -e SASGATE_SERVER__LISTEN=0.0.0.0:8443 \
#     -e SASGATE_SERVER__TLS_CERT_FILE=/run/tls/tls.crt -e SASGATE_SERVER__TLS_KEY_FILE=/run/tls/tls.key \
#     -e SASGATE_SERVER__PUBLIC_URL=https://sasgate.example.org:8443 \
#     -p 8443:8443 sasgate
#
# THE SHIPPED config/ IS A DEMO for `make run`: it listens on loopback only, its account trusts
# the Azurite certificate .azurite/cert.pem (not in the image, so `serve` refuses to start with
# it as is), and its demo principals' API keys are published in README.md (refused on any
# non-loopback listen address). Mount your own configuration and policy over /app/config and
# /app/policy, and check them with `sasgate config check` first.
#
# To be reachable from outside the container, sasgate must listen beyond loopback
# (SASGATE_SERVER__LISTEN=0.0.0.0:8443), and there it serves only HTTPS: mount a certificate and
# key and name them (server.tls_cert_file, server.tls_key_file; a renewed pair written over them
# is picked up without a restart). Plain HTTP beyond loopback needs
# SASGATE_SERVER__ALLOW_INSECURE_HTTP=true, right ONLY behind a TLS-terminating proxy (ingress,
# load balancer, sidecar) where nothing else can reach the port: API keys, OIDC tokens and SAS
# URLs cross that hop.

# ---- build: `make release`, the target CI builds too (`make test` builds it and runs schemathesis
# against that release binary), so the image holds the binary CI checked ---------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Only what the build needs (.dockerignore keeps target/, node_modules/, data/ … out anyway).
# benches/ is listed because Cargo.toml declares [[bench]] targets, which cargo resolves even
# for `cargo build`. make is in the rust image (buildpack-deps).
COPY Makefile Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# The cache mounts (BuildKit) keep the crate downloads and the target directory between builds;
# the binary is copied out in the same step because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    make release \
    && install -m 0755 target/release/sasgate /usr/local/bin/sasgate

# ---- runtime ----------------------------------------------------------------------------------
# debian:bookworm-slim rather than gcr.io/distroless/cc-debian12: the binary needs only glibc and
# libgcc_s (both images have them), and slim matches the build stage's Debian release exactly
# (same glibc); it also gives an operator a shell for `docker exec … sasgate ledger verify`.
FROM debian:bookworm-slim

# ca-certificates: sasgate itself trusts the webpki roots compiled into it (reqwest and the
# PostgreSQL client use rustls with webpki-roots) plus any ca_file/sslrootcert you configure; the
# system bundle is there for anything else run in the container. Versions are not pinned: the
# security updates of the Debian release are wanted (hence DL3008 is ignored).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 sasgate \
    && useradd --system --uid 10001 --gid sasgate --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin sasgate \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/sasgate

COPY --from=build /usr/local/bin/sasgate /usr/local/bin/sasgate

WORKDIR /app
# Owned by root and read-only to sasgate: it never writes its configuration or policy.
COPY config/ /app/config/
COPY policy/ /app/policy/

# The ledger is the only thing sasgate writes (the SQLite file and its -wal/-shm beside it), on
# this volume. With `--read-only --tmpfs /tmp` nothing else is writable, and nothing else is
# needed (SQLite's temporary files go to $TMPDIR). A named volume is created owned by uid 10001
# from the directory above; a bind-mounted host directory must be writable by uid 10001.
# PostgreSQL instead: -e SASGATE_LEDGER__URL= -e SASGATE_LEDGER__URL_FILE=/run/secrets/ledger-url
# (empty the default here: a variable and its _FILE twin both non-empty is refused, and sasgate
# does not start; an empty variable counts as unset).
ENV SASGATE_LEDGER__URL=sqlite:///var/lib/sasgate/sasgate.db \
    TMPDIR=/tmp
VOLUME ["/var/lib/sasgate"]

USER 10001:10001
EXPOSE 8443

# Liveness through GET /healthz: `sasgate healthcheck` reads server.listen and whether
# server.tls_cert_file is set, from the same file and SASGATE_ variables as serve (nothing else is
# validated, no secret or certificate is read), and probes 127.0.0.1 over HTTP or HTTPS without
# any proxy. It sends no credential, so it does not need the certificate to name 127.0.0.1. It
# exits 0 when /healthz answers 200 and 1 otherwise. No curl in the image.
# The HEALTHCHECK finds the configuration through SASGATE_CONFIG only: to run serve on another
# file, set -e SASGATE_CONFIG=/path/to/sasgate.toml rather than `serve --config`, or the probe
# reads this default file (and probes the wrong port) while serve runs on yours.
# Readiness (can the ledger be written) is GET /readyz: point the orchestrator's probe at it.
ENV SASGATE_CONFIG=/app/config/sasgate.toml
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["sasgate", "healthcheck"]

# SIGTERM (docker stop) drains requests in flight for server.shutdown_grace (20s by default):
# give `docker stop -t` / terminationGracePeriodSeconds more than that.
ENTRYPOINT ["sasgate"]
CMD ["serve"]
