# Nexus Flow: one image, any number of instances. Multi-stage: the builder compiles the
# visitor widget (wasm) and the server; the runtime image holds only the binary and the
# widget build.
#
#   docker build -t nexus-flow .
#   docker run -p 8080:8080 -e NEXUS_FLOW_DATABASE_URL=postgres://nexus:secret@db:5432/nexus nexus-flow
#
# Without NEXUS_FLOW_DATABASE_URL the instance uses SQLite in /data (mount a volume there).

FROM rust:1-bookworm AS build
WORKDIR /src
RUN rustup target add wasm32-unknown-unknown \
    && apt-get update \
    && apt-get install -y --no-install-recommends npm \
    && rm -rf /var/lib/apt/lists/*
COPY . .
# The widget: wasm build, wasm-bindgen (a library inside xtask), then wasm-opt from the npm
# binaryen package where `cargo xtask setup` would put it (keeps the bundle within budget).
RUN npm install --no-audit --no-fund --prefix target/tools binaryen@132 \
    && cargo xtask widget
RUN cargo build --release -p nexus-server --bin nexus-flow

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /data --create-home nexus
COPY --from=build /src/target/release/nexus-flow /usr/local/bin/nexus-flow
COPY --from=build /src/target/widget /app/widget
ENV NEXUS_FLOW_ADDR=0.0.0.0:8080 \
    NEXUS_FLOW_WIDGET_DIR=/app/widget \
    NEXUS_FLOW_DATA_DIR=/data \
    NEXUS_FLOW_LOG=info,sqlx=warn,tower_http=warn
USER nexus
WORKDIR /data
VOLUME /data
EXPOSE 8080
# Liveness: GET /api/v1/health; readiness (database reachable): GET /api/v1/ready.
ENTRYPOINT ["nexus-flow"]
CMD ["serve"]
