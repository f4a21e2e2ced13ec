// Package redistest starts real redis-server processes for tests.
//
// Tests never talk to a fake Redis. Start finds a free loopback port, starts
// redis-server with a data directory under t.TempDir, and stops it (by PID)
// when the test ends. Without a redis-server binary the test is skipped,
// unless REQUIRE_REDIS=1 is set (as `make test` does), in which case it
// fails.
package redistest
