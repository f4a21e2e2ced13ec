// Package snapshot captures Redis shards through the replication protocol,
// the building block of the proxy's cluster-wide BGSAVE.
//
// # Role
//
// Capture connects to a shard as a replica would (AUTH, REPLCONF
// listening-port, REPLCONF capa eof capa psync2, PSYNC ? -1) and records
// what a replica receives: the RDB the shard forks for it, spooled to a file
// as it arrives, then the live command stream, appended as raw RESP to a
// "tail" file. StopAt ends the tail at a given replication offset. The RDB
// stands at the fork offset from +FULLRESYNC; RDB plus tail stand at the
// cut offset. Anyone can rebuild the shard at the cut with plain tools:
// start redis-server on the RDB, then `redis-cli --pipe < tail`.
//
// Why replication and not BGSAVE plus a file copy: it needs no access to
// the shard's files (remote and managed hosts), and it yields the exact
// offset the RDB stands at, which a dump.rdb does not reliably carry; with
// that offset, a cut read from INFO master_repl_offset during a proxy write
// barrier becomes a precise end for the tail.
//
// # Invariants
//
//   - Memory does not grow with the data: the RDB goes from a 256 KiB read
//     buffer straight to its file; a command of the stream is copied to the
//     tail as it is parsed, whatever its size. What grows is bookkeeping for
//     cutting behind the reader: one checkpoint per MiB of tail and one
//     record per PING or REPLCONF GETACK in the stream (16 bytes each).
//   - The offset counts every byte of the stream after the RDB, as a
//     replica's does: PING, SELECT, MULTI/EXEC and REPLCONF GETACK included.
//     Bare newline keepalives before the RDB are not part of the stream.
//   - The tail holds every command of the stream except PING and REPLCONF
//     (GETACK), which are replication-protocol noise: a replay would only
//     get replies nobody reads (or, for GETACK, none at all). They are
//     counted in the offset, skipped in the file. SELECT and MULTI/EXEC are
//     kept: after a full sync the shard re-emits SELECT before its first
//     write, so a tail replayed on a fresh connection hits the right
//     databases, and transactions replay as transactions.
//   - A cut is exact: StopAt(offset) leaves precisely the commands of the
//     stream before offset in the tail, or fails with ErrBadCut when offset
//     is not a command boundary or falls inside MULTI/EXEC. If the reader is
//     already past offset when StopAt is called (the usual case under
//     load), the tail is truncated back; the place is found from the last
//     checkpoint before it.
//   - Files: Capture creates both (they must not exist) with mode 0600. On
//     success they are complete and fsynced (the caller renames them into
//     place and fsyncs the directory). On any failure, Close, or ctx end
//     before StopAt completes, the capture removes both, so nothing partial
//     is left for the caller to mistake for a snapshot.
//   - StopAt succeeds only with a verified RDB: by default VerifyRDB
//     (package rdb: structure and CRC64), or whatever CaptureConfig.Verify
//     says. Verification runs after the cut, with the link closed, so a
//     slow check of a large RDB never lets the shard's output buffer for
//     the capture grow. CheckRDB also gives the key counts and checksum a
//     manifest records. With CaptureConfig.CheckRDB the same check runs
//     while the RDB arrives instead, fed copies through a bounded queue
//     (4 MiB), beside the transfer: a snapshot job uses it, so an RDB sent
//     to a bucket is checked without being read back, and one written to
//     a directory is not read twice. The check reads faster than a shard
//     sends (0.59 s for a 28.9 MB RDB, check included, against 0.53 s for
//     the shard's own SAVE: BenchmarkSnapshotRSS1M), so it does not slow
//     the transfer.
//
// # Errors
//
// A shard that answers the handshake with an error (ACL -NOPERM, -NOAUTH,
// a managed service's unknown PSYNC, an unexpected +CONTINUE) gives a
// *RefusedError (errors.Is ErrRefused) that quotes the reply. When the link
// breaks, the capture probes the shard on a fresh connection: no answer or a
// new replication id is ErrSourceGone; the same shard up and no longer
// listing the capture as a replica is ErrClosedBySource, reported as
// likely client-output-buffer-limit replica with how far behind the
// capture was (the shard's log, which would say so, is not reachable
// remotely); anything else is ErrLinkLost. To recognise itself in INFO
// replication, the capture announces its own local port as
// listening-port unless CaptureConfig.ListeningPort says otherwise.
//
// # Risks for the shard
//
// To the shard, a capture is a replica, with what that costs: a fork and
// its copy-on-write memory, a replication backlog created on a shard that
// never had a replica (1 MB by default, kept after the capture for
// repl-backlog-ttl), and an output buffer holding the stream while the RDB
// transfers. Its ACKs count for WAIT and min-replicas-to-write while it
// runs: they report what the capture has received, not what is durable
// anywhere. With the default listening-port (the capture's local port), a
// Sentinel watching the shard sees a replica it cannot reach while the
// capture runs; set ListeningPort where that matters.
//
// # Concurrency and goroutines
//
// A Stream's methods are safe for concurrent use. Capture starts two
// goroutines, both owned by the Stream: the reader (RDB, then stream, then
// the cut) and, once the RDB is in, a ticker that sends REPLCONF ACK every
// second (as a replica does, so the shard keeps the link). The reader
// answers REPLCONF GETACK itself; a lock serialises the two writers. Both
// stop when StopAt completes, the capture fails, Close is called, or the
// ctx given to Capture ends (which closes the connection and so unblocks
// every read). Close waits for them; if the link had already broken, that
// includes the probe that explains it (at most twice DialTimeout).
// context.AfterFunc watches ctx without a goroutine of its own.
//
// # Following the stream
//
// The live reshard applies the stream elsewhere while it is captured:
// with CaptureConfig.Follow, Stream.Follow returns a reader of the tail
// file from the fork offset on, each event with the exact replication
// offset after it (PING and REPLCONF, left out of the file, become
// offset-only events) and the time it was received. The reader goroutine flushes the tail to a command boundary
// before every read that may block and every 64 KiB, so a follower lags
// the link by at most that, and the file, not the link, absorbs a slow
// consumer. The capture keeps when each stretch arrived (a record per
// millisecond at most) until the follower has read it. CaptureConfig.Acked
// makes REPLCONF ACK report what the consumer has applied instead of what
// was received.
//
// Redis 7 defaults to diskless sync with repl-diskless-sync-delay 5: the
// shard forks, and so answers +FULLRESYNC, seconds after PSYNC, sending bare
// newlines meanwhile. Capture sets that delay to 0 for its own handshake
// and back right after (forkdelay.go), unless KeepForkDelay; a shard that
// refuses, or a disk-based one still saving, still makes it wait. Capture
// blocks through that wait (bounded by ctx and LinkTimeout of silence);
// run captures of several shards concurrently and never hold a write
// barrier while they wait.
package snapshot
