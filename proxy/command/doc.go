// Package command is the proxy's table of Redis commands: for every command
// and subcommand of Redis 7, its arity, flags, ACL categories, command tips
// and key specifications, and the functions that the data path runs on every
// proxied command: Lookup finds a command's Info from its arguments, Info.Keys
// finds the positions of its key arguments.
//
// The table (table_gen.go) is transcribed from a live redis-server's
// COMMAND INFO and COMMAND DOCS by a generator and committed. Regenerate it
// after upgrading the Redis the proxy fronts:
//
//	go generate ./proxy/command
//
// which runs "go run ./internal/gen" in proxy/command against the installed
// redis-server (run it by hand with -addr host:port to read a running server
// instead). The tests compare
// the table with the installed server, so a stale table fails them.
//
// Keys follows the key specs generically, as Redis's own
// getKeysUsingKeySpecs does, so numkeys commands (EVAL, FCALL, ZUNION,
// LMPOP, ...), keyword-started ones (XREAD STREAMS, GEORADIUS STORE, ...)
// and subcommands (OBJECT ENCODING, MEMORY USAGE, ...) need no code of their
// own. Where Redis's specs are incomplete or of unknown type, Redis falls
// back to per-command code; so does this package, for exactly those
// commands (SORT, SORT_RO, MIGRATE), mirroring Redis's getkeys procedures.
//
// Everything here is immutable after package initialisation and safe for
// concurrent use. Lookup and Keys do not allocate (Keys appends to the
// caller's slice, which allocates only if it must grow). The package starts
// no goroutines.
package command

//go:generate go run ./internal/gen
