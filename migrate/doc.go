// Package migrate restores RDB data into a target topology: a snapshot
// directory of the proxy (one RDB and one tail per shard) or any .rdb files
// of a self-managed Redis, into any number of shards with any slot layout.
// It is the "back up 3 shards, restore into 5" workflow, and the engine of
// the live reshard, which builds on it (see "Live reshard" below).
//
// # How a restore runs
//
// Restore(ctx, cfg) is the one entry point; StartRestore runs it in the
// background for the proxy's PROXY RESTORE job, with a Status to poll.
//
//  1. Pre-flight, before anything is written (preflight.go, scan.go): every
//     source is read in full, values skipped, so a corrupt, truncated or
//     checksum-failing file is refused with its offset; every tail is
//     parsed and each command routed. The scan yields the databases present
//     (more than one is refused unless DB picks one), keys present in more
//     than one source (refused unless AllowDuplicates; dups.go says how
//     and at what cost), the RDB version each value type needs, module
//     values (refused), function libraries, and per target the keys and
//     bytes of its share. Then every target is
//     asked (INFO, FUNCTION LIST): its Redis version (a value type it
//     cannot load is refused, naming the target, both versions and a key),
//     role and cluster mode, whether it holds keys (refused unless Replace
//     or Flush), whether a reshard proxy serves it (CLIENT LIST, and the
//     running proxy's own table: refused whatever the options, live.go),
//     and whether its share fits under maxmemory (refused with the
//     figures; the estimate models Redis's own layout per type and
//     encoding and is calibrated against used_memory, memory.go). All
//     problems are reported together in a
//     *PreflightError. DryRun stops here with the plan in the Report.
//  2. Writing (restore.go, pipe.go): each key's slot picks its target in
//     the TARGET table and one of the target's ConnsPerTarget connections;
//     the key goes as RESTORE key ttl payload REPLACE [ABSTTL], the payload
//     built from the value bytes as the RDB holds them (rdb.AppendDumpPayload)
//     claiming the target's own RDB version, so a 7.2 file restores into
//     7.0 when its value types exist there. Plain strings go as SET key
//     value PXAT ms when they have a TTL; without one, consecutive ones
//     bound for the same connection are gathered into one MSET (at most
//     128 keys or 64 KiB, queued before any other command on that
//     connection and at every drain). Both are equivalent to RESTORE
//     REPLACE and cheaper for the target, MSET the most (see restoreKey
//     and pipe.queueString). Keys already expired are skipped and
//     counted. Values above BigKeyBytes are written in chunks under a
//     temporary key in the same slot and renamed into place (bigkey.go).
//     Function libraries are loaded on every target first.
//  3. Tails (tail.go, route.go): after a source's RDB has been written and
//     every reply read, its tail is replayed in order, each command routed
//     by its keys; DEL/UNLINK/TOUCH/EXISTS/MSET/MSETNX split across
//     targets, MULTI/EXEC as one transaction per target, PUBLISH dropped,
//     commands of other databases skipped and counted. A FLUSHALL (or
//     FLUSHDB of the restored database) in a tail means that source's keys
//     were wiped: its RDB is not restored and its tail applies from after
//     the flush, so other sources' keys on the same targets survive.
//  4. Verify (verify.go), when asked: DBSIZE of each target against the
//     keys written (when it started empty and no tail ran), the function
//     libraries, and a random sample of about VerifySample keys compared
//     by content (type, TTL to the second, every element) with the source.
//
// The targets may be the masters of a Redis Cluster (RestoreConfig.Cluster,
// ClusterTargets; cluster.go): its slot map is the target table, strings go
// as SETs (no MSET across slots), and a slot map that changed by the end
// fails the restore.
//
// # Failure
//
// Any error reply (other than "no such key" to a tail command, see
// benign), a broken connection or a target silent for Timeout stops the
// whole job at once with an error naming the target and the key or
// command (for an MSET, its number of keys and its first and last key;
// the report counts all of them as errors), wrapped in ErrTarget. Nothing
// is skipped silently. Keys already written stay; a rerun with Replace
// completes the restore (RESTORE REPLACE, SET, MSET and RENAME
// overwrite), a rerun with Flush starts over. The error and the report
// say so, with each target's DBSIZE once it has executed what it was sent
// (Report.Partial, TargetReport.Holds; partial.go): the keys acknowledged
// fall short of it. The temporary keys of an interrupted big key expire on
// their own within a day.
//
// # Memory
//
// Bounded by the largest value (the RDB reader holds one value at a time),
// plus per connection a write buffer of about 256 KiB, an MSET being
// gathered (64 KiB) and Window commands in flight. BenchmarkRestoreMemory
// measured a peak Go heap in use of 4.7 MB for 1M small keys and 5.4 MB
// for 5M, and a process peak RSS of 32 MB for both.
// Verify holds one batch of elements at a time.
//
// # Concurrency and goroutines
//
// Restore blocks its caller, which is the producer: it reads the sources
// and queues commands. It starts, owns and stops before returning: per
// connection a writer and a reply reader, one goroutine watching for the
// first failure, one calling Progress (so Progress is never called
// concurrently with itself), and short-lived ones inspecting the targets
// in parallel. Configs and Reports are plain values; RestoreJob is safe
// for concurrent use.
//
// Targets are written in database 0. Passwords are never logged or
// reported.
//
// # Live reshard
//
// StartReshard (reshard*.go) moves the data of a live table's shards (the
// sources) to a new table's shards (the targets) while clients keep
// writing, and cuts the proxy over between two of its batches. The states
// are copying, catching_up, ready (which can fall back to catching_up),
// cutover and done; aborted and failed end a job at any point before the
// commit.
//
//   - copying: every source is captured in parallel through the
//     replication protocol (snapshot.Capture; its stream is spooled to a
//     file in WorkDir while the RDB is copied). Each RDB is written into
//     the targets routed by the NEW table, with the restore's machinery
//     (RESTORE, MSET or SET ... PXAT, big keys in chunks), over
//     connections of the source's own, at ReshardConfig.Rate keys per
//     second over every source when set (SetRate changes it); the
//     captures lower their sources' repl-diskless-sync-delay for their
//     handshakes, unless KeepForkDelay.
//   - catching_up: each source's stream is applied from the fork offset
//     on, in order, read back from the spool (snapshot.Follower) and
//     routed by the new table: multi-key commands split as in a restore,
//     MULTI/EXEC as one transaction per target it touches. The offset
//     every target has answered is acknowledged to the source (the
//     capture's REPLCONF ACK), so WAIT on a source counts the targets.
//     SELECT of a database other than 0, FLUSHALL and FLUSHDB fail the
//     job: replaying a FLUSHALL would wipe the other sources' keys on the
//     targets, and the proxy refuses both while a reshard runs, so one can
//     only come from a client of the shard itself.
//   - ready: every source's lag (bytes received but not answered, age of
//     the oldest such command) within MaxLagBytes and MaxLagTime. A
//     Manual job waits there for Cutover.
//   - cutover (reshard_cutover.go): Proxy.Pause, Proxy.Seal (the proxy has
//     the sources refuse everyone else's writes), every source's
//     master_repl_offset, every stream applied up to it and stopped, every
//     expiry guard set right, Proxy.Commit, resume; all within CutoverTimeout,
//     or the barrier is lifted on the old table and the job aborted.
//
// Expiry: targets are masters and would expire keys by their own clock
// while the stream that renews them lags; near expiries are therefore
// written with a guard and set right in stream order (reshard_expiry.go
// explains the scheme and its limits). Every expiry is absolute.
//
// Credentials: the sources and the targets each have their own
// (SourceUsername/SourcePassword, TargetUsername/TargetPassword), since
// the targets are often a new cluster with its own password; the
// pre-flight reaches every shard with them and reports a refused AUTH as
// such ("target ADDR: refused AUTH: WRONGPASS ..."), before anything is
// written.
//
// Failure: a source or target that breaks, a stream that cannot be
// applied, a source that drops the capture (client-output-buffer-limit
// replica, reported as the capture diagnoses it) fail the job at once; it
// is never retried. Nothing reaches the proxy before the commit, and the
// sources are never written to; the targets keep what was written, so a
// new run needs empty targets again (or Flush).
//
// The job's goroutine owns everything it starts: per source a goroutine
// (copy, then the stream) and a watcher of its capture, the captures and
// the connections. ReshardJob's methods never block on the job, so the
// proxy may call them from a session that holds its barrier's gate.
package migrate
