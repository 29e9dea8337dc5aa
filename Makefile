# Every target works on a fresh machine with Go installed (and node/npm for the
# interop test, which `make test` installs its packages for).
GO        ?= go
PKGS      := ./...
BENCHTIME ?= 1s
FUZZTIME  ?= 30s

.PHONY: run test bench fuzz vet fmt interop-deps build

## run: the example product on the embedded stack (kfake + registry), recorded CDC through it
run:
	$(GO) run ./cmd/meshlet dev --once

## test: vet, then every test with the race detector
test: interop-deps vet
	$(GO) test -race -count=1 $(PKGS)

## bench: every stage's benchmark, then the end-to-end pipeline on kfake
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./cdc ./transforms ./auditlog ./schemas
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./runtime

## fuzz: each decoder's fuzz target for FUZZTIME
fuzz:
	$(GO) test ./cdc -run '^$$' -fuzz FuzzDecodeDebeziumJSON -fuzztime $(FUZZTIME)
	$(GO) test ./schemas -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)

## interop-deps: the npm packages of the third-party consumer in the interop test
interop-deps:
	@test -d internal/interop/node/node_modules || npm ci --prefix internal/interop/node --no-audit --no-fund

build:
	$(GO) build -o bin/meshlet ./cmd/meshlet
