// Command reshard is a Redis-protocol proxy with live resharding.
//
//	reshard proxy [flags]     serve clients (the daemon; with no --shards,
//	                          on 3 redis-server shards it starts itself)
//	reshard restore [flags]   load a snapshot or .rdb files into new shards
//	reshard inspect [flags]   report on a snapshot or .rdb file
//	reshard bench [flags]     load generator and proxy-vs-direct comparison
//
// Flags live here, bound to each package's Config; business logic does
// not. serveProxy (proxy.go) wires the planes: the data plane
// (proxy.New) and its control plane (control.New), closed in the opposite
// order, and the signals that stop them.
package main
