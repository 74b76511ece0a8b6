# The two commands of the README: `make dev` and `make test`.

SHELL     := bash
GO        ?= go
# RACE: auto runs the race detector when cgo works (it needs a C
# compiler), 1 requires it, 0 turns it off.
RACE      ?= auto
FUZZTIME  ?= 10s
STATICCHECK_VERSION ?= v0.8.2
# pebble: the local ACME server the HTTPS end-to-end tests get certificates from.
PEBBLE_VERSION ?= v2.10.1

.PHONY: dev test bench fuzz tools lint build measure-reference

dev:
	$(GO) run ./cmd/tenon dev

build:
	$(GO) build -o bin/tenon ./cmd/tenon

test:
	@set -o pipefail; race=""; \
	cgo="$$($(GO) env CGO_ENABLED)"; cc="$$($(GO) env CC)"; \
	if [ "$(RACE)" = 1 ] || { [ "$(RACE)" = auto ] && [ "$$cgo" = 1 ] && command -v "$${cc%% *}" >/dev/null 2>&1; }; then \
		race=-race; \
	elif [ "$(RACE)" = auto ]; then \
		echo "No C compiler for cgo here: running the tests without the race detector."; \
	fi; \
	$(GO) build -o "$${TMPDIR:-/tmp}/tenon-testsummary" ./internal/testsummary && \
	$(GO) test $$race -count=1 -json ./... | "$${TMPDIR:-/tmp}/tenon-testsummary"

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The performance reference workload end to end (docs/PERFORMANCE.md):
# wrk and tenon loadtest against tenon and a bare net/http server.
measure-reference:
	scripts/measure-reference.sh $(MEASURE_FLAGS)

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzCanonical$$' -fuzztime $(FUZZTIME) ./qsh
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./connectjwt
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./forge
	$(GO) test -run '^$$' -fuzz '^FuzzPathStaysUnderBase$$' -fuzztime $(FUZZTIME) ./hostclient

tools:
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@command -v pebble >/dev/null 2>&1 || test -x "$$($(GO) env GOPATH)/bin/pebble" || $(GO) install github.com/letsencrypt/pebble/v2/cmd/pebble@$(PEBBLE_VERSION)

lint:
	gofmt -l .
	$(GO) vet ./...
	staticcheck ./...
