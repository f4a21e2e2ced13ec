//go:build linux

// Command floor is the reference BenchmarkProxyVsDirect measures reshard
// against: a multiplexing Redis proxy cut down to the work every such proxy
// must do. It runs one thread around one epoll loop, as Redis does. Each
// turn of the loop reads once from every ready client, frames the requests
// and routes each by its first key's slot, as reshard does (router.Slot and
// an even split), onto one connection per shard. It then writes each
// shard's batch in one write, reads and frames the shards' replies, and
// writes every client's replies in one write.
//
// It keeps no limits, transactions, admin, fan-out, statistics or any
// goroutine hand-off, so on a given machine its proxy/direct ratio is close
// to the best a proxy of this kind can reach there.
//
//	floor --listen 127.0.0.1:7000 --shards 127.0.0.1:7001,127.0.0.1:7002
//
// It is a measuring instrument, not a proxy. Its sockets block, so a peer
// that stops reading stalls everything; redis-benchmark's bounded
// pipelines stay far below the socket buffers. It speaks RESP2 arrays only
// and exits on a shard error.
package main
