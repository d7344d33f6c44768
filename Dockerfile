# syntax=docker/dockerfile:1
# ophion-server, ophion-agent and the ophion CLI in one small image.
#   docker build -t ophion .
# Stage 1 brings Node.js 20 (the dashboard is built by ophion-bin's
# build script); stage 2 compiles; stage 3 is the runtime: Debian slim,
# an unprivileged user, the binaries and nothing else.
FROM node:20-bookworm-slim AS node

FROM rust:1-bookworm AS build
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ophion-bin --bins \
 && install -D -t /out target/release/ophion-server target/release/ophion-agent target/release/ophion

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin ophion \
 && mkdir -p /data /agent && chown ophion:ophion /data /agent && chmod 700 /data /agent
COPY --from=build /out/ /usr/local/bin/
USER ophion
# OTLP/gRPC, OTLP/HTTP, the API and the dashboard.
EXPOSE 4317 4318 8080
VOLUME ["/data"]
ENTRYPOINT ["ophion-server"]
CMD ["--data-dir", "/data", "--grpc-addr", "0.0.0.0:4317", "--otlp-http-addr", "0.0.0.0:4318", "--api-addr", "0.0.0.0:8080"]
