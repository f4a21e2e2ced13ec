// Command gen writes proxy/command/table_gen.go from a live redis-server's
// COMMAND INFO and COMMAND DOCS.
//
// Run it from proxy/command (go generate ./proxy/command does):
//
//	go run ./internal/gen                  # starts the installed redis-server
//	go run ./internal/gen -addr host:port  # reads a running server
//
// The server's own table is the source of truth for key positions, flags
// and tips; this program only transcribes it. Anything it does not
// recognise (a new flag, tip or key spec type) is an error, so that a newer
// Redis cannot silently produce a table the package misreads.
package main
