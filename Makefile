# Every target works on a fresh machine with Go installed (and node/npm for the
# interop and snapshot tests, which `make test` installs their packages for).
GO        ?= go
PKGS      := ./...
BENCHTIME ?= 1s
FUZZTIME  ?= 30s

.PHONY: run test hygiene bench bench-stages crash fuzz vet interop-deps ui-deps duckdb-deps build

# Test artifacts (the browser test's screenshots go to $(MESHLET_ARTIFACTS)/ui);
# git ignores the directory.
MESHLET_ARTIFACTS ?= $(CURDIR)/artifacts
export MESHLET_ARTIFACTS

## run: the example product on the embedded stack (kfake + registry), recorded CDC through it.
## The first time, Go compiles the Kafka, Avro and Redis clients (a few minutes on 2 cores);
## the counter shows it is working, and later runs take seconds.
run:
	@echo "make run: compiling the example product (the first build takes a few minutes; later ones are cached)"
	@$(GO) build -v -o /dev/null ./examples/inventory 2>&1 | awk '/^#|error|cannot/ {print; next} {n++; printf "\r  compiled %d packages", n; fflush()} END {if (n) print ""}'
	$(GO) run ./examples/inventory dev --once

## test: the repository check, vet, then every test with the race detector (the
## browser test of the management page needs Debian's chromium; screenshots in artifacts/ui)
test: interop-deps ui-deps duckdb-deps hygiene vet
	$(GO) test -race -count=1 $(PKGS)

## hygiene: no compiled binary tracked, no file over 2 MB without a recorded reason
hygiene:
	$(GO) test -count=1 -run 'TestRepositoryIsClean' ./internal/hygiene

## bench: each stage's benchmark and the in-process pipeline (bench-stages), then
## the comparison against the ceiling and Redpanda Connect that writes
## BENCHMARKS.md, BENCHMARKS.json and BENCHMARKS.png (about 12 minutes on 2 cores;
## KAFKA_BROKERS and SCHEMA_REGISTRY_URL point it at a real cluster)
bench: bench-stages
	internal/bench/run.sh

## bench-stages: decode, handler, log append, Avro encode, contract check, and
## the pipeline on kfake: exactly-once and at-least-once against a raw franz-go pipe
bench-stages:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./cdc ./transforms ./auditlog ./schemas ./contracts
	$(GO) test -run '^$$' -bench Pipeline -benchmem -benchtime 100000x -count 3 ./runtime

## crash: the full crash tests: a real process killed 100 times over 100,000+
## events, the kills spread over the whole run (some during a reprocessing),
## 30 more in whole-transaction mode, 25 more for the stateful orders example
## (20,000 events), then the scale-out and rebalance tests (separate disks, a
## wiped data directory, a replica of the orders product killed); each crash
## test prints where its kills landed. A smaller run of each is part of make test.
crash:
	MESHLET_CRASH_EVENTS=100000 MESHLET_CRASH_KILLS=100 MESHLET_CRASH_TX_EVENTS=30000 MESHLET_CRASH_TX_KILLS=30 \
	MESHLET_SCALE_EVENTS=30000 MESHLET_CRASH_ORDERS_EVENTS=20000 MESHLET_CRASH_ORDERS_KILLS=25 MESHLET_REBALANCE_ORDERS_EVENTS=20000 \
		$(GO) test -count=1 -timeout 60m -v -run 'TestCrash|TestScaleOut|TestWipeRunningDataDirectory|TestRebalanceOrders' ./cli

## fuzz: every decoder's fuzz target, FUZZTIME each
FUZZ_CDC     := FuzzDecodeDebeziumJSON FuzzDecodeDebeziumAvro FuzzDecodeCanalJSON FuzzDecodeMaxwellJSON FuzzDecodeOggJSON FuzzTxAssembler FuzzMeshletAvro FuzzRowDecoder
FUZZ_SCHEMAS := FuzzDecode FuzzResolvedDecode
fuzz:
	@for f in $(FUZZ_CDC); do $(GO) test ./cdc -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) || exit 1; done
	@for f in $(FUZZ_SCHEMAS); do $(GO) test ./schemas -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) || exit 1; done
	$(GO) test ./auditlog -run '^$$' -fuzz '^FuzzSegment$$' -fuzztime $(FUZZTIME)
	@for f in FuzzSplit FuzzOpen; do $(GO) test ./governance -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) || exit 1; done
	$(GO) test ./internal/jsontext -run '^$$' -fuzz '^FuzzAppendJSONString$$' -fuzztime $(FUZZTIME)
	@for f in FuzzReadManifest FuzzOpenRows; do $(GO) test ./snapshot -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) || exit 1; done

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)

## interop-deps: the npm packages of the third-party consumer in the interop test
interop-deps:
	@test -d internal/interop/node/node_modules || npm ci --prefix internal/interop/node --no-audit --no-fund

## ui-deps: playwright-core and axe-core for the management page's browser test
ui-deps:
	@test -d ports/web/browsertest/node_modules || npm ci --prefix ports/web/browsertest --no-audit --no-fund

## duckdb-deps: DuckDB's Node API (it ships the engine), which reads the
## snapshot package's Parquet files in its tests
duckdb-deps:
	@test -d snapshot/testdata/duckdb/node_modules || npm ci --prefix snapshot/testdata/duckdb --no-audit --no-fund

## build: the generic tool and the example product's binary, into bin/
build:
	$(GO) build -o bin/meshlet ./cmd/meshlet
	$(GO) build -o bin/inventory ./examples/inventory
