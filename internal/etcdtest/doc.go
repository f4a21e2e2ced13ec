// Package etcdtest starts real etcd processes for tests, as
// internal/redistest starts redis-server: a coordination test against a fake
// etcd would prove nothing about etcd.
//
// Start runs the etcd binary (Debian's etcd-server package, 3.4) as a
// single-member cluster with a unique name, its client and peer URLs both on
// free 127.0.0.1 ports (never etcd's default 2379 and 2380, where a system
// etcd may run) and its data directory under tb.TempDir. It returns once the
// server answers a read through the Go client, and stops the process by its
// PID at cleanup. Fault tests stop it (Stop, Kill) and bring it back on the
// same ports and data (Restart), or stall it (Signal with SIGSTOP, then
// SIGCONT).
//
// Without an etcd binary the test is skipped, unless REQUIRE_REDIS=1 is set
// (as `make test` does; the variable is the suite's rule for every real
// server it needs), in which case it fails.
//
// Only tests import this package, so the etcd client it links stays out of
// the proxy binary until the control plane needs it. A Server is owned by one
// test; Restart must not race with its other methods.
package etcdtest
