# reshard: the two commands a newcomer needs are `make run` and `make test`.

GO        ?= go
BIN       := bin/reshard
STATE_DIR ?= .reshard
LISTEN    ?= 127.0.0.1:6380
BENCHTIME ?= 1x

.PHONY: all build run run-many test test-short fuzz bench lint clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/reshard

# The proxy on 3 local redis-server shards it starts itself, serving on
# $(LISTEN), with its table, snapshots and the shards' data in $(STATE_DIR);
# Ctrl-C stops it and its shards, and the next make run serves the same data.
# Both can be set: make run LISTEN=127.0.0.1:6390 STATE_DIR=/var/lib/reshard
run: build
	./$(BIN) proxy --listen $(LISTEN) --state-dir $(STATE_DIR)

# Several proxies sharing one routing table through etcd, for trying it:
# etcd, 3 redis-server shards and 3 proxies on 127.0.0.1:6380-6382, their
# state and logs in $(MANY_DIR); Ctrl-C stops them all. Needs etcd
# (apt-get install -y etcd-server). See README, Several proxies.
MANY_DIR ?= .reshard-many
run-many: build
	MANY_DIR=$(MANY_DIR) ./cmd/reshard/run-many.sh

# The whole suite, under the race detector (the proxy is many goroutines
# sharing sessions, backends and tables; -race costs about half a minute
# here). REQUIRE_REDIS=1 turns a missing redis-server or etcd into a failure
# instead of a skip, so integration tests always run here and in CI.
test:
	@unformatted="$$("$$($(GO) env GOROOT)/bin/gofmt" -l .)" || exit 1; if [ -n "$$unformatted" ]; then echo "not gofmt-ed (run gofmt -w):"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	REQUIRE_REDIS=1 CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

# Unit tests only (integration tests skip without redis-server).
test-short:
	$(GO) test -count=1 -short ./...

# Each fuzz target for a short while (go test fuzzes one target at a time).
FUZZTIME ?= 20s
FUZZ_TARGETS := \
	./router:FuzzSlot ./router:FuzzParseSpec \
	./proxy/internal/wire:FuzzReplyLen ./proxy/internal/wire:FuzzReqReader ./proxy:FuzzParseScanCursor \
	./proxy/command:FuzzKeys \
	./snapshot:FuzzCmdParser ./snapshot:FuzzMarkScanner ./snapshot:FuzzCheckTail \
	./snapshot/rdb:FuzzReader ./snapshot/rdb:FuzzDumpPayload ./snapshot/rdb:FuzzDecode \
	./internal/resp:FuzzParseInt ./internal/resp:FuzzReadReply ./internal/resp:FuzzCommandReader
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$pkg $$name"; \
		$(GO) test $$pkg -list "^$$name\$$" | grep -qx "$$name" || { echo "no fuzz target $$name in $$pkg"; exit 1; }; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

# Whole-system measurements (not part of make test): proxy against direct
# redis-server in one run, the snapshot barrier, capture and restore.
bench:
	REQUIRE_REDIS=1 $(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./bench/ ./router/ ./proxy/... ./snapshot/... ./migrate/...

clean:
	rm -rf bin
