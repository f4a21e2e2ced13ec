// Package proxyname is how a reshard proxy names its connections to its
// shards (CLIENT SETNAME reshard-proxy-<run_id>, the run_id of its INFO
// server), and how the proxy and the restore find them in a shard's
// CLIENT LIST: a shard with such a connection is live behind a proxy, and
// writing into it from outside that proxy loses or mixes data. It has no
// state and is safe for concurrent use.
package proxyname
