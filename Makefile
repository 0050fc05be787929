# Barge. Targets are the interface; each is idempotent and installs what it
# needs into .tools/ (git-ignored).

GO        ?= go
TOOLS     := $(CURDIR)/.tools
MINIO     := $(TOOLS)/bin/minio
MINIO_ADDR ?= 127.0.0.1:9000
MINIO_USER ?= minioadmin
MINIO_PASS ?= minioadmin
ARGS      ?=

.PHONY: all run test deps minio bench lint

all: test

# make run ARGS='--store s3://bucket?endpoint=...'
run:
	$(GO) run ./cmd/agent $(ARGS)

test: deps
	@unformatted="$$(git ls-files -co --exclude-standard '*.go' | xargs -r gofmt -l)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

# MinIO server for the integration tests (about 6 minutes to build once),
# and kcat for the librdkafka compatibility tests.
deps: $(MINIO)
	@command -v kcat >/dev/null 2>&1 || { \
		echo "installing kcat"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y kcat; }

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

bench:
	@echo "bench: the benchmark lands with its own issue; nothing to run yet."

lint:
	@unformatted="$$(git ls-files -co --exclude-standard '*.go' | xargs -r gofmt -l)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
