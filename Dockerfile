# syntax=docker/dockerfile:1
# The operator image: one static (musl) identity-operator binary on distroless/static (CA
# certificates, no shell, no package manager), running as the non-root user 65532.
#
#   docker build -t registry.example.com/identity-operator:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t registry.example.com/identity-operator:0.1.0 --push .
#
# Reproducible: Cargo.lock is enforced (--locked), paths and toolchain are fixed by the build
# image, and the base images are pinned below by tag. For a release, pin them by digest too:
#   --build-arg RUST_IMAGE=docker.io/library/rust:1.95-bookworm@sha256:<crane digest docker.io/library/rust:1.95-bookworm>
#   --build-arg RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:<crane digest gcr.io/distroless/static-debian12:nonroot>
# (1.95 is the toolchain the project is tested with; Cargo.toml's rust-version is the minimum.)
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${RUST_IMAGE} AS build
RUN apt-get update \
	&& apt-get install -y --no-install-recommends musl-tools \
	&& rm -rf /var/lib/apt/lists/*
# Built natively on each platform (buildx emulates the others), for that platform's musl
# target: a fully static binary, so the final image needs no libc. ring's C and assembly are
# compiled with musl-gcc.
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
	CC_aarch64_unknown_linux_musl=musl-gcc
RUN rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The registry and target caches speed up rebuilds without entering any layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
	--mount=type=cache,target=/src/target \
	target="$(uname -m)-unknown-linux-musl" \
	&& cargo build --release --locked --target "$target" --bin identity-operator \
	&& cp "target/$target/release/identity-operator" /identity-operator

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="identity-operator" \
	org.opencontainers.image.description="Declarative identity-provider configuration for Kubernetes" \
	org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /identity-operator /usr/local/bin/identity-operator
USER 65532:65532
# /metrics, /healthz and /readyz (--metrics-addr).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/identity-operator", "run"]
