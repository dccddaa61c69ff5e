# syntax=docker/dockerfile:1.7
# One image with both binaries: `neptune` (driver, executor, local, bench; built-in apps) and
# `neptune-operator`. Build: docker build -t neptune:dev .
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Stripped binaries for the image only: the workspace's release profile keeps line tables (for
# profiling benchmarks), which an image has no use for; without them and the symbol table the
# binaries shrink by a quarter or more (figures in docs/kubernetes.md). Panics still print their
# message and location; backtraces lose function names.
ENV CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p neptune -p neptune-operator \
 && mkdir -p /out \
 && cp target/release/neptune target/release/neptune-operator /out/

# Distroless with glibc and libgcc, no shell, runs as uid/gid 65532 ("nonroot"), which the
# operator's pod securityContext expects.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="neptune" \
      org.opencontainers.image.description="Neptune stream/batch engine and its Kubernetes operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/neptune /usr/local/bin/neptune
COPY --from=build /out/neptune-operator /usr/local/bin/neptune-operator
USER 65532:65532
WORKDIR /tmp
EXPOSE 4040 4041 7077 8080
ENTRYPOINT ["/usr/local/bin/neptune"]
CMD ["--help"]
