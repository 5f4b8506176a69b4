# syntax=docker/dockerfile:1
#
# Container image for nephoran-kafka-consumer.
#
#   docker build -t nephoran-kafka-consumer .
#   docker run --rm -e KAFKA_BROKERS=host:9092 -p 9090:9090 nephoran-kafka-consumer
#
# Only Cargo.toml, Cargo.lock, build.rs, src/ and schemas/ reach the build
# context (see .dockerignore); add any new build input there too.

ARG RUST_VERSION=1.95

# ---------------------------------------------------------------------------
# builder
# ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS builder

# rdkafka (features libz + ssl, no cmake-build) compiles the bundled librdkafka
# with its mklove ./configure (a bash script) and GNU make, linking it
# statically; zlib and OpenSSL are linked dynamically via libz-sys/openssl-sys.
# python3 is only referenced by librdkafka's top-level Makefile (VERSION).
# Debian package versions are deliberately not pinned (bookworm security
# updates replace them); the base image tag is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential \
        pkg-config \
        libssl-dev \
        zlib1g-dev \
        python3 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# 1) Dependencies only: build a dummy lib + main so this layer is cached
#    until Cargo.toml / Cargo.lock change (librdkafka takes minutes to build).
#    The crate's own artefacts and fingerprints are then deleted so step 2
#    always recompiles it, whatever the mtimes of the copied sources.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src \
           target/release/nephoran-kafka-consumer* \
           target/release/libnephoran_kafka_consumer* \
           target/release/deps/nephoran_kafka_consumer-* \
           target/release/deps/libnephoran_kafka_consumer-* \
           target/release/.fingerprint/nephoran-kafka-consumer-*

# 2) The real sources (src/, schemas/, build.rs if present: whatever
#    .dockerignore lets through).
COPY . .
RUN touch src/main.rs \
 && cargo build --release --locked \
 && install -m 0755 target/release/nephoran-kafka-consumer /usr/local/bin/nephoran-kafka-consumer

# ---------------------------------------------------------------------------
# runtime
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# libssl3 / zlib1g: the dynamic deps of the binary (librdkafka itself is
# static); ca-certificates for SSL brokers.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        ca-certificates \
        libssl3 \
        zlib1g \
 && rm -rf /var/lib/apt/lists/*

# Unprivileged user. /var/lib/nephoran is the working directory, so the
# default intent sink `dir:./intents` resolves to /var/lib/nephoran/intents.
# The intents dir is created here so a named volume mounted on it inherits
# the ownership on first use.
RUN groupadd --system --gid 10001 nephoran \
 && useradd --system --uid 10001 --gid 10001 \
        --home-dir /var/lib/nephoran --no-create-home \
        --shell /usr/sbin/nologin nephoran \
 && mkdir -p /var/lib/nephoran/intents \
 && chown -R 10001:10001 /var/lib/nephoran

COPY --from=builder /usr/local/bin/nephoran-kafka-consumer /usr/local/bin/nephoran-kafka-consumer

WORKDIR /var/lib/nephoran
USER 10001:10001

# Metrics / health HTTP endpoint (METRICS_ADDR, e.g. 0.0.0.0:9090).
EXPOSE 9090

# No HEALTHCHECK: the slim image has no HTTP client; probe :9090 from the
# orchestrator (Kubernetes httpGet) instead.
ENTRYPOINT ["/usr/local/bin/nephoran-kafka-consumer"]
CMD ["run"]
