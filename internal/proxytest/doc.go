// Package proxytest runs a proxy in front of real redis-server shards for
// tests and benchmarks: shards from internal/redistest on free loopback
// ports, the proxy on 127.0.0.1:0, everything stopped at cleanup.
package proxytest
