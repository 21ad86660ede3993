# Ferry's container image: both binaries, /agent and /aggregator, in one image.
# One image, not two: the agent and the aggregator are released together and
# must speak the same protocol version, so the chart pins a single tag (no
# skew), nodes cache one image, and one SBOM/scan covers both.
# `make image` builds the same image without a container daemon (tools/image).
#
#   docker build -t ghcr.io/ferrylogs/ferry:0.1.0 .
#   docker run --rm ghcr.io/ferrylogs/ferry:0.1.0 /aggregator validate --config /etc/ferry/aggregator.yaml

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static binaries (no libc in the final image).
ENV CGO_ENABLED=0
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags '-s -w' -o /out/agent ./cmd/agent && \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags '-s -w' -o /out/aggregator ./cmd/aggregator

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), /tmp.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ferry" \
      org.opencontainers.image.description="Ferry log pipeline: /agent and /aggregator" \
      org.opencontainers.image.source="https://github.com/ferrylogs/ferry" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/agent /out/aggregator /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
# No entrypoint: the chart (or `docker run IMAGE /aggregator ...`) names the program.
CMD ["/agent", "--help"]
