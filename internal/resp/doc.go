// Package resp holds the RESP pieces that the packages speaking to Redis
// share: encoding commands (AppendCommand and the Append* pieces a caller
// uses to build one argument by argument), reading one whole reply from a
// buffered stream (ReadReply, SkipReply), reading the commands of a
// replication stream or tail file (CommandReader), parsing header numbers
// (ParseInt), and the AUTH command (AuthArgs).
//
// The reply reader is for connections whose replies are read one at a time
// (the restore's targets, the snapshot's control connections, the load
// generator). The command reader is for tail files, read whole by the
// restore and followed as they grow by the live reshard; each sets the
// limits it must accept. Readers that are special for a reason live with
// their package: the proxy's framer, which forwards replies as raw bytes
// without a copy where it can, and its request parser (inline commands,
// client limits); the snapshot's replication-stream parser, which copies
// commands to the tail as it parses them without holding them whole.
//
// Every function is safe for concurrent use as long as each caller has its
// own buffers and *bufio.Reader; the package has no state. A CommandReader
// belongs to one goroutine.
package resp
