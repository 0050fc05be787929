# Barge. Targets are the interface; each is idempotent and installs what it
# needs into .tools/ (git-ignored).

GO        ?= go
TOOLS     := $(CURDIR)/.tools
MINIO     := $(TOOLS)/bin/minio
KAFKAJS   := $(TOOLS)/node/node_modules/kafkajs/package.json
IMDS_MOCK := $(TOOLS)/bin/ec2-metadata-mock
TERRAFORM_VERSION := 1.11.4
MINIO_ADDR ?= 127.0.0.1:9000
MINIO_USER ?= minioadmin
MINIO_PASS ?= minioadmin
ARGS      ?=

.PHONY: all run test deps tf-deps tf-check haproxy minio bench bench-short lint fuzz image

all: test

# make run ARGS='--store s3://bucket?endpoint=...'
run:
	$(GO) run ./cmd/agent $(ARGS)

# The agent's container image as build/barge-image.tar, without a container
# engine (internal/image): docker load -i build/barge-image.tar, or
# podman load. IMAGE_ARCH=arm64 cross-builds for Graviton; the Dockerfile
# builds the same image where there is an engine.
IMAGE_ARCH ?=
IMAGE_TAG  ?= barge:latest
image:
	$(GO) run ./cmd/image -o build/barge-image.tar -tag $(IMAGE_TAG) $(if $(IMAGE_ARCH),-arch $(IMAGE_ARCH))

test: deps
	@unformatted="$$(git ls-files -co --exclude-standard '*.go' | xargs -r gofmt -l)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

# Every fuzz target for FUZZTIME each (make test only replays the corpora
# in testdata/fuzz). A finding fails the run and is written to the
# package's testdata/fuzz/<target>/: fix it and check the input in. New
# coverage is minimized for at most FUZZMINIMIZE, not go test's 60 s, during
# which a worker runs nothing else. A run that ends in a bare "context
# deadline exceeded" with no input written is Go's own flake
# (golang/go#75804), not a finding, and is retried once.
FUZZTIME     ?= 30s
FUZZMINIMIZE ?= 2s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    for try in 1 2; do \
	      echo "fuzzing $$pkg $$target for $(FUZZTIME)"; \
	      if $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) \
	          -fuzzminimizetime $(FUZZMINIMIZE) $$pkg >/tmp/barge-fuzz.log 2>&1; then \
	        grep 'execs:' /tmp/barge-fuzz.log | tail -n 1; break; fi; \
	      if [ $$try = 1 ] && grep -q 'context deadline exceeded' /tmp/barge-fuzz.log && \
	          ! grep -q 'Failing input written to' /tmp/barge-fuzz.log; then \
	        echo "retrying after go's fuzzing flake (golang/go#75804)"; continue; fi; \
	      cat /tmp/barge-fuzz.log; exit 1; \
	    done; \
	  done; \
	done

# MinIO server for the integration tests (about 6 minutes to build once),
# kcat and python3-confluent-kafka (for Debian's /usr/bin/python3) for the
# librdkafka compatibility tests, HAProxy for the fleet
# tests (the tests run haproxy themselves; the package's service is not
# used) and terraform for deploy/'s checks. apt-get update runs only when
# the install fails without it.
deps: $(MINIO) $(KAFKAJS) $(IMDS_MOCK) tf-deps haproxy
	@command -v kcat >/dev/null 2>&1 || { \
		echo "installing kcat"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y kcat; }
	@/usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1 || { \
		echo "installing python3-confluent-kafka"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get install -y python3-confluent-kafka || \
		{ $$SUDO apt-get update && $$SUDO apt-get install -y python3-confluent-kafka; }; }

# HAProxy from Debian, the load balancer of the fleet tests and of make
# bench's fleet scenario (both run haproxy themselves).
haproxy:
	@command -v haproxy >/dev/null 2>&1 || { \
		echo "installing haproxy"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get install -y haproxy || \
		{ $$SUDO apt-get update && $$SUDO apt-get install -y haproxy; }; }

# Terraform, when it is neither on PATH nor in .tools/bin: built from source
# into .tools/bin (several minutes; tools/install-terraform.sh says why not
# plain go install). deploy/terraform_test.go looks in both places.
tf-deps:
	@command -v terraform >/dev/null 2>&1 || [ -x $(TOOLS)/bin/terraform ] || { \
		echo "building terraform $(TERRAFORM_VERSION) into $(TOOLS)/bin (takes several minutes)"; \
		GO=$(GO) TERRAFORM_VERSION=$(TERRAFORM_VERSION) sh tools/install-terraform.sh $(TOOLS)/bin; }

# The offline Terraform checks alone: fmt, then init, validate and test of
# every root under deploy/ and localstack/ against the schema-only
# hashicorp/aws stand-in in tools/tfschema-provider (a minute to build once,
# then seconds).
tf-check: tf-deps
	$(GO) test -count=1 -run '^TestTerraform$$' -v ./deploy

# kafkajs from npm for the JavaScript client test (node and npm from Debian
# when the machine lacks them).
$(KAFKAJS):
	@command -v npm >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y nodejs npm; }
	npm install --no-audit --no-fund --prefix $(TOOLS)/node kafkajs@2.2.4

# AWS's EC2 instance-metadata mock, for --zone auto (seconds to build).
$(IMDS_MOCK):
	GOBIN=$(TOOLS)/bin $(GO) install github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@v1.13.0

$(MINIO):
	@echo "building MinIO into $(MINIO) (takes several minutes)"
	GOBIN=$(TOOLS)/bin $(GO) install github.com/minio/minio@latest

# A MinIO server in the foreground with data in .tools/minio-data.
minio: $(MINIO)
	@mkdir -p $(TOOLS)/minio-data
	@echo "Create a bucket named barge (console: http://127.0.0.1:9001, user $(MINIO_USER) / $(MINIO_PASS), or 'mc mb'),"
	@echo "then, in another shell, run the agent with:"
	@echo "  AWS_ACCESS_KEY_ID=$(MINIO_USER) AWS_SECRET_ACCESS_KEY=$(MINIO_PASS) AWS_REGION=us-east-1 \\"
	@echo "  make run ARGS='--store s3://barge?endpoint=http://$(MINIO_ADDR)&region=us-east-1&path_style=true'"
	MINIO_ROOT_USER=$(MINIO_USER) MINIO_ROOT_PASSWORD=$(MINIO_PASS) \
		$(MINIO) server $(TOOLS)/minio-data --address $(MINIO_ADDR) --console-address 127.0.0.1:9001

# Barge against a real MinIO, beside the bucket's raw bandwidth and franz-go's
# in-memory kfake, every scenario, then the metadata log's own scenario
# (meta-log, in-process); prints tables and writes bench/results.json.
# BENCH_ARGS adds flags, e.g. BENCH_ARGS='-scenarios 1KiB-64p -profile /tmp/prof'
# or BENCH_ARGS='-scenarios meta-log'.
BENCH_ARGS ?=
bench: $(MINIO) haproxy
	$(GO) run ./cmd/bench $(BENCH_ARGS)

# Every scenario briefly (about three minutes once MinIO is built).
bench-short: $(MINIO) haproxy
	$(GO) run ./cmd/bench -short $(BENCH_ARGS)

lint:
	@unformatted="$$(git ls-files -co --exclude-standard '*.go' | xargs -r gofmt -l)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd tools/tfschema-provider && $(GO) vet ./...
