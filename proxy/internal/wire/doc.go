// Package wire is the proxy's side of the RESP wire: reading client
// requests, framing and building replies, and raw socket I/O.
//
// It is the hot path's bottom layer, so it allocates nothing per command:
// a Reader returns Requests whose arguments are slices of its own read
// buffer, valid until its next Next; the Append functions append to a
// buffer the caller owns and reuses; ReadReply and ReadReplyStream frame a
// shard's reply into a buffer the caller gives. A Reader enforces the
// request Limits as it parses (Redis's proto-max-bulk-len, the argument
// count, client-query-buffer-limit) and reports a malformed or oversized
// request as a *ProtocolError, whose text is what Redis says after
// "-ERR ".
//
// Nothing here starts a goroutine or holds a lock. A Reader belongs to the
// one goroutine that reads its connection; NewRawIO's ReadWriter allows
// one reader and one writer at a time (a client's session reads while its
// pub/sub pumps write). The package knows RESP, not Redis commands:
// routing, the command table and the replies' meaning live in package
// proxy.
package wire
