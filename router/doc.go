// Package router maps keys to shards.
//
// A key's slot is CRC16/XMODEM of the key (or of its {hash tag}) modulo
// 16384, exactly as Redis Cluster computes it, so CLUSTER KEYSLOT agrees with
// Slot on every key. A Table assigns each slot to one shard; it is immutable
// once built, carries an epoch that grows by one on every change, and is
// published to readers through a Holder (an atomic pointer), so a routing
// lookup takes no lock and allocates nothing.
//
// The package does no network I/O. Its only file I/O is Save/Load of the
// persisted table in the proxy's state directory.
package router
