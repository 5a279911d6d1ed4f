# Heterogen node image (README, *Deploying*).
#
#   docker build -t heterogen .
#   docker run -d --name heterogen -v heterogen-data:/data -p 127.0.0.1:8088:8088 heterogen
#
# Cargo features: FEATURES=etcd (the default here) builds the etcd store a cluster needs
# (`--store etcd://…`); `--build-arg FEATURES=` builds the one-node binary only.
ARG FEATURES=etcd

FROM rust:1-bookworm AS builder
ARG FEATURES
# protoc: etcd-client generates its gRPC code at build time; its protos import Google's
# well-known types (google/protobuf/descriptor.proto, struct.proto), which are in
# libprotobuf-dev (only recommended by protobuf-compiler, so --no-install-recommends omits it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build

# Dependencies first, in a layer of their own that only Cargo.toml and Cargo.lock invalidate:
# the crate's own targets are stand-ins here (main.rs, lib.rs, one file per [[bench]] of the
# manifest, which cargo checks exist).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && : > src/lib.rs \
    && awk '/^\[\[bench\]\]/ { b = 1; next } b && /^name *=/ { gsub(/^name *= *"|"$/, ""); print; b = 0 }' Cargo.toml \
       | while read -r bench; do echo 'fn main() {}' > "benches/$bench.rs"; done \
    && cargo build --release --locked --features "$FEATURES" \
    && rm -rf src benches

# The sources. build.rs embeds web-console/app/ and asks git for the revision; without .git
# (it is not in the build context) `heterogen --version` says "unknown".
COPY . .
# The copied files keep their own mtimes, which may be older than the stand-ins' build: touch
# the crate roots so that cargo compiles the real crate.
RUN touch build.rs src/main.rs src/lib.rs \
    && cargo build --release --locked --features "$FEATURES" \
    && install -m 0755 target/release/heterogen /usr/local/bin/heterogen \
    && /usr/local/bin/heterogen --version | grep '^heterogen '

FROM debian:bookworm-slim
# curl only for HEALTHCHECK.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 heterogen \
    && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin heterogen \
    && mkdir /data \
    && chown 10001:10001 /data \
    && chmod 0700 /data
COPY --from=builder /usr/local/bin/heterogen /usr/local/bin/heterogen

# Settings as variables, not flags, so that `docker run … heterogen serve --owners …` keeps
# them, and -e HETEROGEN_… (or a flag) overrides them. Every flag has its HETEROGEN_ variable
# (README, *Configuration*). Without --owners (HETEROGEN_OWNERS) the node creates its owner
# key in /data/owner-key.json and logs a console link at each start (`docker logs`).
ENV HETEROGEN_DATA_DIR=/data \
    HETEROGEN_LISTEN=0.0.0.0:8088
VOLUME /data
WORKDIR /data
USER 10001:10001
EXPOSE 8088

# /healthz: 200 while the process serves HTTP (plain, or TLS with --tls-cert); /readyz also
# checks the store (503 while etcd does not answer), for a load balancer's readiness probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD curl -fs -o /dev/null http://127.0.0.1:8088/healthz \
        || curl -fsSk -o /dev/null https://127.0.0.1:8088/healthz \
        || exit 1

# SIGTERM (docker stop) shuts the node down gracefully; give it time: docker stop -t 30.
ENTRYPOINT ["/usr/local/bin/heterogen"]
CMD ["serve"]
