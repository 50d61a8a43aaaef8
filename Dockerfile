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
#     -e SASGATE_SERVER__LISTEN=0.0.0.0:8080 -e SASGATE_SERVER__ALLOW_PLAIN_HTTP=true \
#     -p 127.0.0.1:8080:8080 sasgate
#
# THE SHIPPED config/ IS A DEMO for `make run`: it listens on loopback only, its account trusts
# the Azurite certificate .azurite/cert.pem (not in the image, so `serve` refuses to start with
# it as is), and its demo principals' API keys are published in README.md (refused on any
# non-loopback listen address). Mount your own configuration and policy over /app/config and
# /app/policy, and check them with `sasgate config check` first.
#
# To be reachable from outside the container, sasgate must listen beyond loopback:
# SASGATE_SERVER__LISTEN=0.0.0.0:8080. It serves plain HTTP only, so that also needs
# SASGATE_SERVER__ALLOW_PLAIN_HTTP=true, which is right ONLY behind a TLS-terminating proxy
# (ingress, load balancer, sidecar): API keys, OIDC tokens and SAS URLs cross that hop.

# ---- build: `cargo build --release --locked` (make run's release build, pinned to Cargo.lock) --
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Only what the build needs (.dockerignore keeps target/, node_modules/, data/ … out anyway).
# benches/ is listed because Cargo.toml declares [[bench]] targets, which cargo resolves even
# for `cargo build`.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# The cache mounts (BuildKit) keep the crate downloads and the target directory between builds;
# the binary is copied out in the same step because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/sasgate /usr/local/bin/sasgate

# ---- runtime ----------------------------------------------------------------------------------
# debian:bookworm-slim rather than gcr.io/distroless/cc-debian12: the binary needs only glibc and
# libgcc_s (both images have them), but the HEALTHCHECK below needs a shell (bash's /dev/tcp),
# and distroless has none, so it would need curl or a helper binary copied in. slim also matches
# the build stage's Debian release exactly (same glibc).
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
# (empty the default here: when a variable and its _FILE twin are both non-empty, which one
# takes effect depends on their values; `sasgate config check` warns about it).
ENV SASGATE_LEDGER__URL=sqlite:///var/lib/sasgate/sasgate.db \
    TMPDIR=/tmp
VOLUME ["/var/lib/sasgate"]

USER 10001:10001
EXPOSE 8080

# Liveness through GET /healthz. No sasgate subcommand probes the server without an API key and
# nothing is added to the binary for it, and curl would add libcurl and its TLS/LDAP/SSH libraries
# to the image, so bash (already in the base image) speaks HTTP/1.0 over /dev/tcp. The port is
# taken from SASGATE_SERVER__LISTEN when that is set, else 8080; the probe goes to 127.0.0.1, so
# it works for a 127.0.0.1 or 0.0.0.0 listen address, not for one bound to a single other IP.
# Readiness (can the ledger be written) is GET /readyz: point the orchestrator's probe at it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "port=${SASGATE_SERVER__LISTEN##*:}; exec 3<>\"/dev/tcp/127.0.0.1/${port:-8080}\" && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r -t 4 status <&3 && [[ $status == *' 200 '* ]]"]

# SIGTERM (docker stop) drains requests in flight for server.shutdown_grace (20s by default):
# give `docker stop -t` / terminationGracePeriodSeconds more than that.
ENTRYPOINT ["sasgate"]
CMD ["serve", "--config", "/app/config/sasgate.toml"]
