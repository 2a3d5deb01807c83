# One function as a container for Cloud Run (or any container platform):
#   docker build --build-arg FUNCTION=tebra_debug -t tebra-debug .
# The same binary runs on Lambda (see `make deploy TARGET=aws`); here it runs
# its plain HTTP server on $PORT, as a non-root user, with JSON logs.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
ARG FUNCTION
WORKDIR /src
# Fail early with a clear message rather than building the whole workspace.
RUN test -n "${FUNCTION}" || { echo "build with --build-arg FUNCTION=<crate name>" >&2; exit 2; }
COPY Cargo.toml Cargo.lock ./
COPY shared ./shared
COPY functions ./functions
COPY bench ./bench
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p "${FUNCTION}" --bin "${FUNCTION}" \
    && install -D -m 0755 "target/release/${FUNCTION}" /out/function

# Distroless with the C runtime (glibc) only: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/function /function
USER nonroot:nonroot
ENV PORT=8080 \
    LOG_FORMAT=json
EXPOSE 8080
# Cloud Run and Lambda probe the service themselves (/healthz, /redis-health);
# the image has no shell or client to run a HEALTHCHECK with.
# checkov:skip=CKV_DOCKER_2: the platform probes /healthz and /redis-health
ENTRYPOINT ["/function"]
