// Package router maps keys to shards.
//
// A key's slot is CRC16/XMODEM of the key (or of its {hash tag}) modulo
// 16384, exactly as Redis Cluster computes it, so CLUSTER KEYSLOT agrees with
// Slot on every key. A Table assigns each slot to one shard; it is immutable
// once built, carries an epoch that grows by one on every change, and is
// published to readers through a Holder (an atomic pointer), so a routing
// lookup takes no lock and allocates nothing.
//
// # Topology specs
//
// A topology spec lists shards as comma-separated HOST:PORT[=RANGES]
// entries. RANGES is one or more "A-B" or "A" slot ranges joined with "/":
//
//	127.0.0.1:7001=0-5000/8000-9000,127.0.0.1:7002=5001-7999/9001-16383
//
// A shard with replicas is written PRIMARY+REPLICA[+REPLICA...][=RANGES]
// (127.0.0.1:7001+127.0.0.1:7101=0-8191): the slots belong to the shard,
// writes go to its primary, and reads may go to its replicas. An address
// appears once in a spec, as a primary or as a replica.
//
// IPv6 addresses are written in brackets ([::1]:7001). Either every entry
// has ranges or none has; without ranges the slots are split the way
// `redis-cli --cluster create` splits them among masters (3 shards:
// 0-5460, 5461-10922, 10923-16383), so a topology built here matches a
// cluster an operator built with redis-cli. Every slot must be owned
// exactly once, and every shard must own at least one slot. ParseSpec and
// ParseShardArgs read specs, FormatSpec writes the canonical form.
//
// # Persistence
//
// Save writes the current table to topology.json in the proxy's state
// directory (temp file, fsync, rename, fsync of the directory); Load reads
// it back and refuses a file that fails its checksum or validation. After a
// cutover the persisted table is the truth: a restarted proxy must come
// back on it, never on the topology it was started with.
//
// # Concurrency
//
// Tables are immutable and safe for concurrent use; Holder is safe for
// concurrent Load and Store. The package starts no goroutines and does no
// network I/O; its only file I/O is Save and Load.
package router
