# The two commands of the README: `make dev` and `make test`.

GO        ?= go
FUZZTIME  ?= 10s
STATICCHECK_VERSION ?= v0.8.2
# pebble: the local ACME server the HTTPS end-to-end tests get certificates from.
PEBBLE_VERSION ?= v2.10.1

.PHONY: dev test bench fuzz tools lint build

dev:
	$(GO) run ./cmd/tenon dev

build:
	$(GO) build -o bin/tenon ./cmd/tenon

test:
	$(GO) test -race -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

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
