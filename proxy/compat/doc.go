// Package compat is the client compatibility suite of the proxy: real client
// libraries, used unchanged and with their default options, run the same
// scenarios against the proxy (3 shards) and against one plain redis-server,
// and every value they read must be the same on both.
//
// The package holds tests only. Four parts:
//
//   - go-redis v9 (gocompat_test.go): a scenario list (strings, hashes,
//     lists, sets, sorted sets, streams with a consumer group, transactions,
//     WATCH with retries, EVALSHA, blocking pops, pipelines, pub/sub, SCAN
//     iteration) run with redis.NewClient (RESP3 by default, and RESP2) and
//     redis.NewClusterClient, each against its reference and against the
//     proxy, compared step by step.
//   - node (node_test.go, node/compat.mjs): ioredis and node-redis from the
//     npm registry, pinned in node/package.json, standalone and in cluster
//     mode, run the same categories in a node process that prints its
//     results as JSON; the Go test compares the proxy's JSON with the
//     reference's (script_test.go). node and node/node_modules (installed
//     by .ci/run with `npm ci`) are needed: without them the node test
//     skips, and under REQUIRE_REDIS=1 it fails instead.
//   - redis-py (python_test.go, python/compat.py): Debian's python3-redis
//     (4.3, RESP2 only), redis.Redis and redis.cluster.RedisCluster, the
//     same categories the same way. RedisCluster 4.3 has no transactions or
//     WATCH: the cluster run has them on the client of the key's node. No
//     sharded pub/sub (redis-py 4.3 has none). A python3 that imports redis
//     is needed (python3 on PATH, else /usr/bin/python3, Debian's, for
//     which python3-redis is installed; .ci/run installs it): without it
//     the test skips, and under REQUIRE_REDIS=1 it fails instead.
//   - redis-benchmark (benchmark_test.go): its default test set completes
//     against the proxy without an error.
//
// The reference of a standalone client is one plain redis-server; that of a
// cluster-mode client is a one-node Redis Cluster owning every slot, since
// cluster clients differ from standalone ones even against real Redis
// (transactions, pipelines, sharded pub/sub). Where Redis Cluster refuses a
// multi-key command across slots that the proxy serves (MGET, MSET, DEL,
// ...), the rest of that scenario is compared with the standalone run
// instead (crossSlotFallback).
//
// Why compare with live servers rather than with expected values written
// in the test: "what one Redis server would do" is the proxy's
// specification, and a live server states it exactly, error wording
// included, for whatever version is installed.
//
// Every server is a real process on a free loopback port (internal/redistest,
// internal/proxytest), stopped at the end of its test. Each scenario starts
// on an empty keyspace and script cache. Keys of multi-key operations share
// a {hash tag}, the same-slot rule of Redis Cluster that the proxy applies;
// the scenarios' other keys spread over all three shards, which the go-redis
// test checks.
package compat
