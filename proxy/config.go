package proxy

import (
	"fmt"
	"net"
	"time"

	"github.com/reshard/reshard/proxy/internal/wire"
)

// Config holds the proxy's settings. DefaultConfig is the one place defaults
// live; the command line binds its flags to these fields.
type Config struct {
	// Listen is the client address. The default binds loopback only.
	Listen string
	// RequirePass, when set, is the password of the "default" user that
	// clients must give (AUTH) before any other command.
	RequirePass string
	// AdminPassword, when set, is the password of the "admin" user, the only
	// one allowed to run PROXY and Redis's admin commands.
	AdminPassword string
	// ShardUsername and ShardPassword authenticate the proxy's connections
	// to the shards of the table it starts on (AUTH [username] password):
	// the data path, snapshots, and the sources of a reshard. A route
	// prepared for a cutover carries its own (Prepare). Empty: the shards
	// need none.
	ShardUsername, ShardPassword string
	// Announce is the address the proxy gives clients as its own in
	// CLUSTER SLOTS/SHARDS/NODES; empty means the listening address.
	Announce string
	// MaxClients caps concurrent client connections, like Redis's maxclients.
	MaxClients int
	// IdleTimeout closes a client idle this long; 0 never does (Redis's
	// "timeout 0").
	IdleTimeout time.Duration
	// BackendConns is the number of multiplexed connections per shard.
	BackendConns int
	// ReadFrom is where connections' reads go, until READONLY or
	// READWRITE (replicas.go).
	ReadFrom ReadFrom
	// ReplicaMaxLag is how many bytes of replication stream a replica
	// may be behind its primary and still be read from.
	ReplicaMaxLag int64
	// Sentinels are the Redis Sentinels that name the primaries of the
	// shards given as sentinel:NAME (HOST:PORT each), and
	// SentinelUsername and SentinelPassword authenticate to them, if
	// they need it.
	Sentinels                          []string
	SentinelUsername, SentinelPassword string
	// DialTimeout bounds one connection attempt to a shard.
	DialTimeout time.Duration
	// ShardTimeout drops a shared shard connection on which requests have
	// waited this long without any reply (a stopped shard, a vanished host):
	// they fail with an error naming the shard and the proxy reconnects.
	// 0 waits for ever. Blocking commands run on connections of their own
	// and are not affected.
	ShardTimeout time.Duration
	// MaxBulkLen is the largest bulk argument a client may send (Redis's
	// proto-max-bulk-len).
	MaxBulkLen int64
	// MaxArgs is the largest argument count of one command.
	MaxArgs int64
	// MaxQueryBuffer caps the bytes of one pending client request (Redis's
	// client-query-buffer-limit).
	MaxQueryBuffer int64
	// MaxOutputBuffer caps the reply bytes the proxy holds for one client
	// pipeline; a client whose pipeline would exceed it is disconnected, as
	// Redis does at its client-output-buffer-limit.
	MaxOutputBuffer int64
	// MaxPubsubOutputBuffer caps the bytes queued for a subscribed client
	// (messages and replies it has not read yet); a client past it is
	// disconnected, as at Redis's client-output-buffer-limit pubsub.
	MaxPubsubOutputBuffer int64
	// PubsubOutputBufferSoft and PubsubOutputBufferSoftTime are the soft
	// limit beside it, as in Redis: a subscribed client that has had more
	// than PubsubOutputBufferSoft bytes queued for longer than
	// PubsubOutputBufferSoftTime is disconnected when more is queued for
	// it. 0 bytes: no soft limit.
	PubsubOutputBufferSoft     int64
	PubsubOutputBufferSoftTime time.Duration

	// testHook, set by tests only (export_test.go), is called where a
	// panic must end one client and no more: with each command planned
	// ("plan"), in a blocking step ("outside gate"), with each reply a
	// subscription connection reads ("pump") and with each reply a shared
	// shard connection reads ("shard reply").
	testHook func(where string, args [][]byte)
}

// DefaultConfig returns the defaults, chosen to match Redis's own where
// Redis has the same setting.
func DefaultConfig() Config {
	return Config{
		Listen:          "127.0.0.1:6380",
		MaxClients:      10000,
		BackendConns:    2,
		ReplicaMaxLag:   DefaultReplicaMaxLag,
		DialTimeout:     2 * time.Second,
		ShardTimeout:    15 * time.Second, // Redis Cluster's cluster-node-timeout
		MaxBulkLen:      512 << 20,
		MaxArgs:         1 << 20,
		MaxQueryBuffer:  1 << 30,
		MaxOutputBuffer: 1 << 30,
		// Redis's limits for pub/sub clients: 32mb 8mb 60
		MaxPubsubOutputBuffer:      32 << 20,
		PubsubOutputBufferSoft:     8 << 20,
		PubsubOutputBufferSoftTime: 60 * time.Second,
	}
}

func (c Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("proxy: listen address %q: %w", c.Listen, err)
	}
	switch {
	case c.MaxClients < 1:
		return fmt.Errorf("proxy: maxclients must be at least 1, got %d", c.MaxClients)
	case c.ReplicaMaxLag < 0:
		return fmt.Errorf("proxy: replica max lag must not be negative, got %d", c.ReplicaMaxLag)
	case c.BackendConns < 1 || c.BackendConns > 64:
		return fmt.Errorf("proxy: backend connections per shard must be 1 to 64, got %d", c.BackendConns)
	case c.IdleTimeout < 0:
		return fmt.Errorf("proxy: idle timeout must not be negative, got %s", c.IdleTimeout)
	case c.DialTimeout <= 0:
		return fmt.Errorf("proxy: dial timeout must be positive, got %s", c.DialTimeout)
	case c.ShardTimeout < 0:
		return fmt.Errorf("proxy: shard timeout must not be negative, got %s", c.ShardTimeout)
	case c.MaxBulkLen < 1:
		return fmt.Errorf("proxy: max bulk length must be positive, got %d", c.MaxBulkLen)
	case c.MaxArgs < 1:
		return fmt.Errorf("proxy: max arguments must be positive, got %d", c.MaxArgs)
	case c.MaxQueryBuffer < c.MaxBulkLen:
		return fmt.Errorf("proxy: query buffer limit %d is below the max bulk length %d", c.MaxQueryBuffer, c.MaxBulkLen)
	case c.MaxOutputBuffer < 1:
		return fmt.Errorf("proxy: output buffer limit must be positive, got %d", c.MaxOutputBuffer)
	case c.MaxPubsubOutputBuffer < 1:
		return fmt.Errorf("proxy: pub/sub output buffer limit must be positive, got %d", c.MaxPubsubOutputBuffer)
	case c.PubsubOutputBufferSoft < 0:
		return fmt.Errorf("proxy: pub/sub output buffer soft limit must not be negative, got %d", c.PubsubOutputBufferSoft)
	case c.PubsubOutputBufferSoftTime < 0:
		return fmt.Errorf("proxy: pub/sub output buffer soft limit time must not be negative, got %s", c.PubsubOutputBufferSoftTime)
	}
	return nil
}

// limits are the request limits the client's request reader enforces.
func (c *Config) limits() wire.Limits {
	return wire.Limits{MaxBulkLen: c.MaxBulkLen, MaxArgs: c.MaxArgs, MaxQueryBuffer: c.MaxQueryBuffer}
}
