// Package rdb reads Redis RDB files as a stream of records, without
// decoding values, for the snapshot, restore and inspect features.
//
// # Role
//
// A snapshot checks the RDB it captured from a shard (structure and CRC64)
// and counts its keys; a restore turns every key of an RDB into
// RESTORE key ttl payload ABSTTL, where the payload is the value's bytes as
// the file holds them plus a footer (DumpPayload); inspect reports what a
// file holds. None of them needs the values decoded, so Reader only walks
// each value's structure far enough to find where it ends: lengths, integer
// and LZF strings, quicklist nodes, the stream radix tree with its consumer
// groups, module values through their self-describing opcodes. Nested
// ziplists, listpacks and intsets are strings to the walk. Where a value
// must be decoded (big-key chunking, inspection, --verify), the Each*
// functions and DecodeStream iterate the raw bytes one element at a time;
// decode.go says why they are not github.com/hdt3213/rdb.
//
// # Invariants
//
//   - Memory is bounded by the largest value, held once as raw bytes (or
//     not at all with SkipValues), plus a 64 KiB read buffer. Buffers grow
//     only as input bytes arrive, so a forged length in a short or corrupt
//     file cannot reserve more memory than the file has; LZF expansion is
//     checked against the format's maximum ratio before allocating.
//   - Every malformed, truncated or unsupported input gives an *Error that
//     wraps one sentinel (ErrCorrupt, ErrTruncated, ErrChecksum,
//     ErrUnsupportedVersion, ErrUnknownOpcode, ErrUnsupported) and carries
//     the byte offset; nothing panics. FuzzReader, FuzzDumpPayload and
//     FuzzDecode hold the package to that.
//   - A file is only good once Next has returned io.EOF: that is when the
//     trailing CRC64 (RDB 5+) has been compared. A zero stored checksum
//     means the writer had rdbchecksum off, and is accepted as Redis does.
//   - Entries tile the file: each Entry's Offset is where the previous one
//     ended, so offsets and sizes can be reported and sliced.
//   - DumpPayload of an entry read from a file equals what DUMP returned
//     for that key on the server that wrote it, byte for byte, when given
//     the file's RDB version (tested against redis-server for every type
//     and encoding Redis 7.0 writes).
//
// RDB versions 1 to 12 (Redis up to 7.4/8.0) are read; a newer version is
// refused up front, by number, rather than misread.
//
// # Concurrency
//
// A Reader belongs to one goroutine; the Entry it returns is reused by the
// next call to Next (Clone keeps one). The package-level functions (CRC64,
// DumpPayload, ParseDumpPayload, the decoders) are safe for concurrent use
// on distinct inputs. The package starts no goroutines.
package rdb
