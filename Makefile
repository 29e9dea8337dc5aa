# Every target works on a fresh machine with Go installed (and node/npm for the
# interop test, which `make test` installs its packages for).
GO        ?= go
PKGS      := ./...
BENCHTIME ?= 1s
FUZZTIME  ?= 30s

.PHONY: run test bench bench-stages crash fuzz vet interop-deps build

## run: the example product on the embedded stack (kfake + registry), recorded CDC through it
run:
	$(GO) run ./cmd/meshlet dev --once

## test: vet, then every test with the race detector
test: interop-deps vet
	$(GO) test -race -count=1 $(PKGS)

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

## crash: the full crash test (a real process killed 25 times over 100,000+
## events) and the scale-out test; a smaller crash test runs in make test
crash:
	MESHLET_CRASH_EVENTS=100000 MESHLET_CRASH_KILLS=25 MESHLET_SCALE_EVENTS=30000 \
		$(GO) test -count=1 -timeout 40m -v -run 'TestCrashExactlyOnce|TestScaleOut' ./cmd/meshlet

## fuzz: every decoder's fuzz target, FUZZTIME each
FUZZ_CDC     := FuzzDecodeDebeziumJSON FuzzDecodeDebeziumAvro FuzzDecodeCanalJSON FuzzDecodeMaxwellJSON FuzzDecodeOggJSON FuzzTxAssembler FuzzMeshletAvro FuzzRowDecoder
FUZZ_SCHEMAS := FuzzDecode FuzzResolvedDecode
fuzz:
	@for f in $(FUZZ_CDC); do $(GO) test ./cdc -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) || exit 1; done
	@for f in $(FUZZ_SCHEMAS); do $(GO) test ./schemas -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) || exit 1; done
	$(GO) test ./auditlog -run '^$$' -fuzz '^FuzzSegment$$' -fuzztime $(FUZZTIME)
	@for f in FuzzSplit FuzzOpen; do $(GO) test ./ports/seal -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) || exit 1; done
	$(GO) test ./internal/jsontext -run '^$$' -fuzz '^FuzzAppendJSONString$$' -fuzztime $(FUZZTIME)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)

## interop-deps: the npm packages of the third-party consumer in the interop test
interop-deps:
	@test -d internal/interop/node/node_modules || npm ci --prefix internal/interop/node --no-audit --no-fund

build:
	$(GO) build -o bin/meshlet ./cmd/meshlet
