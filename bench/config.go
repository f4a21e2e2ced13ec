package bench

import (
	"fmt"
	"net"
	"time"
)

// Limits on Config values. They keep a typo from opening a hundred thousand
// sockets or allocating gigabytes, not from running a realistic load.
const (
	maxConns     = 10000
	maxPipeline  = 10000
	maxValueSize = 64 << 20
)

// Config describes one load. DefaultConfig holds the defaults; the reshard
// bench command binds its flags to these fields.
type Config struct {
	// Addr is the host:port to load.
	Addr string
	// Conns is the number of TCP connections, each driven by one goroutine
	// and holding about 100 KiB (read buffer and histogram).
	Conns int
	// Pipeline is the number of commands each connection sends in one
	// write before it reads their replies (1 = request/response).
	Pipeline int
	// Keyspace is the number of distinct keys; each command picks one
	// uniformly at random.
	Keyspace int
	// ReadRatio is the fraction of commands that are GET (0..1); the rest
	// are SET.
	ReadRatio float64
	// ValueSize is the length in bytes of every SET value.
	ValueSize int
	// Duration bounds the run. It is always in force, also together with
	// Requests: the run stops at whichever limit comes first.
	Duration time.Duration
	// Requests is the total number of commands over all connections;
	// 0 means until Duration.
	Requests int64
	// KeyPrefix starts every key (keys are KeyPrefix + a decimal index).
	KeyPrefix string
	// Seed makes the key and command sequence reproducible; connection i
	// uses Seed+i.
	Seed int64
	// Password, when set, is sent with AUTH on every connection. It never
	// appears in a Result or a report.
	Password string
}

// DefaultConfig returns the defaults: 50 connections without pipelining,
// half reads, 64-byte values over 100000 keys for 10 seconds against the
// proxy's default address.
func DefaultConfig() Config {
	return Config{
		Addr:      "127.0.0.1:6380",
		Conns:     50,
		Pipeline:  1,
		Keyspace:  100000,
		ReadRatio: 0.5,
		ValueSize: 64,
		Duration:  10 * time.Second,
		KeyPrefix: "bench:",
		Seed:      1,
	}
}

// validate reports the first field that cannot be used, naming it and its value.
func (c Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil || c.Addr == "" {
		return fmt.Errorf("bench: Addr %q is not host:port", c.Addr)
	}
	switch {
	case c.Conns < 1 || c.Conns > maxConns:
		return fmt.Errorf("bench: Conns %d out of range 1..%d", c.Conns, maxConns)
	case c.Pipeline < 1 || c.Pipeline > maxPipeline:
		return fmt.Errorf("bench: Pipeline %d out of range 1..%d", c.Pipeline, maxPipeline)
	case c.Keyspace < 1:
		return fmt.Errorf("bench: Keyspace %d must be at least 1", c.Keyspace)
	case !(c.ReadRatio >= 0 && c.ReadRatio <= 1): // also rejects NaN
		return fmt.Errorf("bench: ReadRatio %v out of range 0..1", c.ReadRatio)
	case c.ValueSize < 0 || c.ValueSize > maxValueSize:
		return fmt.Errorf("bench: ValueSize %d out of range 0..%d", c.ValueSize, maxValueSize)
	case c.Duration <= 0:
		return fmt.Errorf("bench: Duration %v must be positive (it bounds every run, also one with Requests)", c.Duration)
	case c.Requests < 0:
		return fmt.Errorf("bench: Requests %d must not be negative (0 = until Duration)", c.Requests)
	}
	return nil
}
