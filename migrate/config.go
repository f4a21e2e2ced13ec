package migrate

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot/objstore"
)

// RestoreConfig says what to restore where. Start from DefaultRestoreConfig;
// the zero value of a field is not always its default.
type RestoreConfig struct {
	// Sources are what to restore: one snapshot directory (shard-N.rdb
	// files, each with an optional shard-N.tail.aof applied after it), or
	// one or more .rdb files. Several directories may be given too; their
	// files are restored in the order given.
	Sources []string
	// Cluster says Targets are the masters of a Redis Cluster, as
	// ClusterTargets reads them (cluster.go): cluster-enabled targets are
	// then required rather than refused, strings are not gathered into
	// MSETs, and the slot map must be unchanged after the restore.
	Cluster bool
	// S3 reads sources given as s3://BUCKET/KEY URLs (a snapshot's
	// prefix, or an .rdb object); nil refuses them.
	S3 *objstore.Client
	// Targets is the target topology: every slot owned by exactly one
	// shard (router.ParseSpec or router.ParseShardArgs make one). Keys go
	// to the shard of their slot in this topology, into database 0.
	Targets []router.Shard
	// DB is the source database to restore; -1 means "the only database
	// that holds keys", and the restore is refused when there are several.
	DB int
	// Replace overwrites keys (and function libraries) that already exist
	// on a target. Without Replace or Flush a target that holds keys is
	// refused.
	Replace bool
	// Flush empties every target (FLUSHALL) after the pre-flight checks
	// pass and before anything is written.
	Flush bool
	// AllowDuplicates lets a key be in more than one source, the last
	// source's value winning (each is written with RESTORE REPLACE);
	// without it such keys are refused by the pre-flight, since sources
	// normally are the shards of one keyspace.
	AllowDuplicates bool
	// DryRun runs every check and reports what each target would receive,
	// without writing anything.
	DryRun bool
	// Verify compares, after the restore, each target's key count with
	// what was sent (when the targets started empty) and a random sample
	// of VerifySample keys value for value with the sources.
	Verify bool
	// VerifySample is how many keys Verify compares; -1 compares all.
	VerifySample int
	// BigKeyBytes is the value size (as stored in the RDB) above which a
	// key is written in chunks of commands instead of one RESTORE, so no
	// target is blocked for long by one command. The default, 4 MiB, is
	// what Redis 7.0 RESTOREs in well under 100 ms in the worst case
	// measured: a hashtable of small fields costs it about 0.5 µs per
	// field (a 2M-field hash took about 1 s as one RESTORE), and the nodes
	// of an LZF-compressed list expand several times on load. With tens of
	// MB, the figure first suggested, single commands blocked a target for
	// up to a second (BenchmarkBigKeyLatency).
	BigKeyBytes int64
	// ChunkElements and ChunkBytes bound one chunk command of a big key.
	ChunkElements int
	ChunkBytes    int
	// Window is the number of commands in flight (sent, not yet answered)
	// on one connection; an MSET gathering plain strings counts as one.
	Window int
	// ConnsPerTarget is the number of pipelined connections per target;
	// keys are spread over them by slot.
	ConnsPerTarget int
	// Proxy describes the proxy running the restore (PROXY RESTORE); zero
	// outside one. A target that is a shard of its table, or that any
	// reshard proxy is connected to, is refused all the same.
	Proxy ProxyInfo
	// Username and Password authenticate to every target (AUTH). They are
	// never logged or reported.
	Username, Password string
	// DialTimeout bounds one connection attempt; Timeout is how long a
	// target may leave a sent command unanswered before it is declared
	// failed.
	DialTimeout, Timeout time.Duration
	// Logger receives lowercase, structured progress lines (nothing per
	// key). Nil means zap.NewNop().
	Logger *zap.Logger
	// Progress, when set, is called every ProgressInterval from one
	// goroutine while keys are written, and once at the end of each phase.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Now is the clock that decides which keys have already expired; nil
	// means time.Now. Tests set it.
	Now func() time.Time
}

// DefaultRestoreConfig returns the defaults; the flags of `reshard restore`
// bind to these fields.
func DefaultRestoreConfig() RestoreConfig {
	return RestoreConfig{
		DB:               -1,
		VerifySample:     1000,
		BigKeyBytes:      4 << 20,
		ChunkElements:    1000,
		ChunkBytes:       1 << 20,
		Window:           1024,
		ConnsPerTarget:   2,
		DialTimeout:      5 * time.Second,
		Timeout:          60 * time.Second,
		ProgressInterval: time.Second,
	}
}

// ConfigError is a RestoreConfig field with an unusable value, or two
// fields that exclude each other. It unwraps to ErrInvalidConfig. Error
// names the Go fields; a front end names its own flags or command words
// with Text, so that no user reads a Go field name.
type ConfigError struct {
	// Fields holds the field's name, or both names when the two exclude
	// each other (Value is then nil).
	Fields []string
	Value  any
	Why    string
}

func (e *ConfigError) Error() string {
	if len(e.Fields) == 2 {
		return ErrInvalidConfig.Error() + ": " + e.Text(nil)
	}
	return fmt.Sprintf("%v: %s = %v: %s", ErrInvalidConfig, e.Fields[0], e.Value, e.Why)
}

func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// Text words the error with name(field) for each field (a flag, a command
// word), without the package's prefix; a nil name keeps the field names.
func (e *ConfigError) Text(name func(field string) string) string {
	if name == nil {
		name = func(f string) string { return f }
	}
	if len(e.Fields) == 2 {
		return name(e.Fields[0]) + " and " + name(e.Fields[1]) + " " + e.Why
	}
	return fmt.Sprintf("%s %v: %s", name(e.Fields[0]), e.Value, e.Why)
}

func (c *RestoreConfig) validate() error {
	bad := func(field string, v any, why string) error {
		return &ConfigError{Fields: []string{field}, Value: v, Why: why}
	}
	switch {
	case len(c.Sources) == 0:
		return bad("Sources", c.Sources, "give a snapshot directory or .rdb files")
	case len(c.Targets) == 0:
		return bad("Targets", c.Targets, "give at least one target shard")
	case c.DB < -1:
		return bad("DB", c.DB, "want -1 (the only database present) or a database number")
	case c.Replace && c.Flush:
		return &ConfigError{Fields: []string{"Replace", "Flush"}, Why: "exclude each other: the one overwrites the targets' keys, the other empties the targets first"}
	case c.VerifySample < -1:
		return bad("VerifySample", c.VerifySample, "want -1 (all keys) or a count")
	case c.BigKeyBytes < 1:
		return bad("BigKeyBytes", c.BigKeyBytes, "must be positive")
	case c.ChunkElements < 1:
		return bad("ChunkElements", c.ChunkElements, "must be positive")
	case c.ChunkBytes < 1:
		return bad("ChunkBytes", c.ChunkBytes, "must be positive")
	case c.Window < 1:
		return bad("Window", c.Window, "must be positive")
	case c.ConnsPerTarget < 1 || c.ConnsPerTarget > 64:
		return bad("ConnsPerTarget", c.ConnsPerTarget, "want 1 to 64")
	case c.DialTimeout <= 0:
		return bad("DialTimeout", c.DialTimeout, "must be positive")
	case c.Timeout <= 0:
		return bad("Timeout", c.Timeout, "must be positive")
	case c.ProgressInterval <= 0:
		return bad("ProgressInterval", c.ProgressInterval, "must be positive")
	}
	return nil
}

// Progress is a snapshot of a running restore.
type Progress struct {
	// Phase is "restore" (RDB keys), "tail" (tail commands) or "verify".
	Phase string
	// Keys is the number of source keys handled so far (written or
	// skipped), of KeysTotal in the sources' chosen database.
	Keys, KeysTotal int64
	// Bytes is how far into the sources the restore is, of BytesTotal.
	Bytes, BytesTotal int64
	// KeysPerSec is the average rate since the restore started.
	KeysPerSec float64
	Elapsed    time.Duration
	// ETA is the estimated time left, from the byte rate; 0 when unknown.
	ETA time.Duration
}
