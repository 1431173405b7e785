# syntax=docker/dockerfile:1
#
# Floe image: floe-agent (the entrypoint) and floe-compactor.
#
#   docker build -t floe:local .
#   docker run --rm -p 8080:8080 -e FLOE_ADVERTISE_URL=http://127.0.0.1:8080 floe:local   # one agent on file://./floe-data inside the container
#   docker run --rm -p 8080:8080 -e FLOE_ADVERTISE_URL=http://HOST:8080 -e FLOE_STORE=s3://BUCKET -e AWS_REGION=... floe:local
#   docker run --rm --entrypoint floe-compactor -e FLOE_STORE=s3://BUCKET floe:local
#
# The build uses BuildKit cache mounts (Docker 23+ builds with BuildKit by
# default; `docker compose` v2 too).

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p floe-agent -p floe-compactor \
 && install -D -m 0755 -t /out target/release/floe-agent target/release/floe-compactor

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 floe \
 && useradd --system --uid 10001 --gid floe --home-dir /var/lib/floe --create-home --shell /usr/sbin/nologin floe
COPY --from=builder /out/floe-agent /out/floe-compactor /usr/local/bin/
USER floe
WORKDIR /var/lib/floe
# Containers must listen on all interfaces; the store is set per deployment
# (FLOE_STORE=s3://bucket, or file:///var/lib/floe/data on a mounted volume).
# So is FLOE_ADVERTISE_URL, this container's own address as the other agents
# reach it (e.g. http://agent-1:8080): the agent refuses to start advertising
# the wildcard 0.0.0.0, and no value baked into the image could be right for
# every container of a cluster. A lone agent can advertise
# http://127.0.0.1:8080.
ENV FLOE_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["floe-agent"]
