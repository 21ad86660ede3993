# Ferry's build. Every target installs what it needs itself.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
TOOLS := $(BIN)/tools
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.0
export PATH := $(TOOLS):$(PATH)

.PHONY: all build test test-unit chaos generate demo bench fuzz lint chart image es-start es-stop kube-start kube-stop clean tools

all: build

build:
	$(GO) build -o $(BIN)/agent ./cmd/agent
	$(GO) build -o $(BIN)/aggregator ./cmd/aggregator

# The README's test command: every test, including the end-to-end ones against
# real processes, a real Elasticsearch and a real Kubernetes API server (started
# here, stopped at the end; the API server is built once, see test/kube-apiserver.sh).
# Then, without the race detector (whose sync.Pool drops items), the tests that
# count allocations.
test: build
	@command -v haproxy >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; }
	@/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-aiosmtpd >/dev/null; } # alerting/notify's email tests: a real SMTP server
	@bash test/elasticsearch.sh start
	@bash test/kube-apiserver.sh start
	@set -o pipefail; FERRY_BIN=$(BIN) FERRY_ES_URL=$$(bash test/elasticsearch.sh url) \
	  FERRY_KUBE_ADMIN_KUBECONFIG=$$(bash test/kube-apiserver.sh kubeconfig admin) \
	  $(GO) test -race -count=1 -timeout 40m ./... 2>&1 | tee $(BIN)/test.log; rc=$$?; \
	  if [ $$rc = 0 ]; then $(GO) test -count=1 -run 'TestEncodeAllocations|TestHAProxyParserRelease|TestReceivedPool' \
	    ./proto/ferry/v1/wire/ ./pipeline/parse/ ./transport/ 2>&1 | tee -a $(BIN)/test.log; rc=$$?; fi; \
	  bash test/kube-apiserver.sh stop; bash test/elasticsearch.sh stop; exit $$rc

# The chaos suite (test/chaos): agent, aggregators with the disk buffer and a
# private Elasticsearch, killed, stopped and restarted at seeded random moments
# while logs rotate; every line must arrive exactly once. CHAOS_SCALE=full
# (default, about 17 minutes) or ci (about 4.5); CHAOS_SEED=N replays a
# schedule. The processes' logs are kept in bin/chaos-logs/.
CHAOS_SCALE ?= full
chaos: build
	@set -o pipefail; CHAOS_SCALE=$(CHAOS_SCALE) CHAOS_SEED=$(CHAOS_SEED) FERRY_BIN=$(BIN) \
	  CHAOS_LOG_DIR=$(BIN)/chaos-logs $(GO) test -tags chaos -count=1 -v -run '^TestChaos' \
	  -timeout $(if $(filter ci,$(CHAOS_SCALE)),15m,90m) ./test/chaos/ 2>&1 | tee $(BIN)/chaos.log

# Tests that need neither Elasticsearch nor root: a quick loop while coding.
test-unit:
	$(GO) test -count=1 ./config/ ./pipeline/... ./transport/... ./sinks/ ./sinks/ndjson/

$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

tools: $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc
	@command -v protoc >/dev/null || { apt-get update -qq && apt-get install -y -qq protobuf-compiler; }

generate: tools
	protoc -I proto --go_out=proto --go_opt=paths=source_relative \
	  --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
	  proto/ferry/v1/ferry.proto

demo: build
	bash test/demo.sh

bench: build
	bash test/bench.sh

# Cost per event end to end (issue 17): agent + aggregator + Elasticsearch with
# the disk buffer, Kubernetes metadata (a private kube-apiserver) and GeoIP;
# one table of events/s, CPU-s of each, the ratio, write->searchable latency
# and peak RSS. Parameters: see the top of test/bench-e2e.sh (RUNS=3 ...).
.PHONY: bench-e2e
bench-e2e: build
	FERRY_BIN=$(BIN) bash test/bench-e2e.sh

fuzz:
	bash test/fuzz.sh

# 1,000 simulated agents (test/loadgen, one gRPC client each, a trickle of
# events) against one aggregator (memory per idle stream, per-stream ack
# latency) and against three replicas behind dns:/// round robin (each
# replica's share after max_connection_age rebalancing; /etc/hosts entries,
# root). STREAMS, DURATION, PART=a|b|ab: see test/bench-scale.sh.
.PHONY: bench-scale
bench-scale:
	bash test/bench-scale.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt:"; echo "$$out"; exit 1; }
	$(GO) vet ./...

# Ferry's Kibana saved objects (deploy/kibana/<type>/<id>.json) as one NDJSON
# file for Kibana's Saved Objects page or import API; `aggregator kibana
# import` sends the same objects (embedded in the binary).
.PHONY: kibana
kibana:
	$(GO) run ./deploy/kibana/build -o $(BIN)/kibana/ferry.ndjson

# helm lint, chart README freshness, golden renderings, rendered objects and
# configs, helm install/upgrade/uninstall into a real kube-apiserver (test/chart.sh).
chart: build
	bash test/chart.sh

# The container image without a container daemon: static binaries
# (CGO_ENABLED=0) in one layer on an empty base, written as an OCI image
# layout to bin/image/ by tools/image (go-containerregistry), then read back
# and run by test/image. Same image as the Dockerfile; tag = the chart's appVersion.
IMAGE_REPO ?= ghcr.io/ferrylogs/ferry
IMAGE_ARCH ?= amd64
IMAGE_VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/ferry/Chart.yaml)
image:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/image-root/agent ./cmd/agent
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/image-root/aggregator ./cmd/aggregator
	$(GO) -C tools/image run . -bin $(BIN)/image-root -out $(BIN)/image -repo $(IMAGE_REPO) \
	  -version $(IMAGE_VERSION) -arch $(IMAGE_ARCH) -revision "$$(git rev-parse HEAD 2>/dev/null)"
	FERRY_IMAGE_LAYOUT=$(BIN)/image $(GO) test -count=1 ./test/image/
	@du -sh $(BIN)/image | sed 's/^/image layout: /'

es-start:
	bash test/elasticsearch.sh start
es-stop:
	bash test/elasticsearch.sh stop
kube-start:
	bash test/kube-apiserver.sh start
kube-stop:
	bash test/kube-apiserver.sh stop

clean:
	rm -rf $(BIN)
