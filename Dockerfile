# syntax=docker/dockerfile:1
#
# The Barge agent's image, for machines with a container engine:
#
#   docker build -t barge .
#   docker run -p 9092:9092 -p 9644:9644 barge
#
# `make image` builds the same image without an engine (internal/image;
# TestDockerfileMatches keeps the two alike). Both: a static agent at
# /usr/local/bin/barge-agent, run as 65532:65532 (nonroot), a file store in
# /var/lib/barge/data by default; every setting as a BARGE_* variable or a
# flag after the image name.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/barge-agent ./cmd/agent
RUN mkdir -p /out/data

# Distroless static: CA certificates, /etc/passwd with nonroot (65532), /tmp.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/barge-agent /usr/local/bin/barge-agent
COPY --from=build --chown=65532:65532 --chmod=0750 /out/data /var/lib/barge
WORKDIR /var/lib/barge
USER 65532:65532
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    BARGE_LISTEN=:9092 \
    BARGE_HTTP=:9644 \
    BARGE_STORE=file:///var/lib/barge/data
EXPOSE 9092/tcp 9644/tcp
ENTRYPOINT ["/usr/local/bin/barge-agent"]
