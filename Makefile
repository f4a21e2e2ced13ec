# reshard: the two commands a newcomer needs are `make run` and `make test`.

GO        ?= go
BIN       := bin/reshard
STATE_DIR ?= .reshard
LISTEN    ?= 127.0.0.1:6380
BENCHTIME ?= 1x

.PHONY: all build run test test-short fuzz bench lint clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/reshard

# The proxy on 3 local redis-server shards it starts itself (data in $(STATE_DIR)).
run: build
	./$(BIN) proxy --listen $(LISTEN) --state-dir $(STATE_DIR)

# The whole suite. REQUIRE_REDIS=1 turns a missing redis-server into a failure
# instead of a skip, so integration tests always run here and in CI.
test:
	$(GO) vet ./...
	REQUIRE_REDIS=1 $(GO) test -count=1 -timeout 20m ./...

# Unit tests only (integration tests skip without redis-server).
test-short:
	$(GO) test -count=1 -short ./...

# Each fuzz target for a short while.
FUZZTIME ?= 20s
fuzz:
	$(GO) test ./router -run '^$$' -fuzz '^FuzzSlot$$' -fuzztime $(FUZZTIME)
	$(GO) test ./router -run '^$$' -fuzz '^FuzzParseSpec$$' -fuzztime $(FUZZTIME)
	$(GO) test ./proxy -run '^$$' -fuzz '^FuzzReplyLen$$' -fuzztime $(FUZZTIME)
	$(GO) test ./proxy -run '^$$' -fuzz '^FuzzGuard$$' -fuzztime $(FUZZTIME)
	$(GO) test ./proxy/command -run '^$$' -fuzz '^FuzzKeys$$' -fuzztime $(FUZZTIME)

# Proxy against direct redis-server in one run; prints ratios.
bench:
	REQUIRE_REDIS=1 $(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 30m ./bench/ ./router/ ./proxy/...

clean:
	rm -rf bin
