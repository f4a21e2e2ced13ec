package snapshot

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// A shard that sends its RDB diskless (Redis 7's default) forks for a new
// replica only after repl-diskless-sync-delay (5 s by default), in case
// more replicas arrive to share the fork. A capture is one replica that
// wants its fork now: so, unless CaptureConfig.KeepForkDelay, the capture
// sets the delay to 0 on the node it captures from just before its PSYNC,
// and back to what it was as soon as the shard has forked (+FULLRESYNC),
// or the handshake has failed: the change lasts one handshake, and the
// log gives both values. A shard that refuses CONFIG (a managed service,
// an ACL user without it) keeps its delay; the capture waits for it and
// says so (Stream.ForkNote, the log).
//
// Two captures of one shard at once: the second reads the first's 0 and
// leaves it; the first sets it back. A process killed between the two
// CONFIG SETs leaves the delay at 0, which costs the shard nothing but
// separate forks for replicas that attach together; the log line of the
// first SET says what to set back.

// forkDelay is the setting a capture lowered, to set back.
type forkDelay struct {
	cl   *redis.Client
	log  *zap.Logger
	was  string // the value before, "" when not lowered
	note string // why the delay could not be lowered
}

const forkDelaySetting = "repl-diskless-sync-delay"

// lowerForkDelay sets the delay of cfg.Addr to 0 if it sends diskless with
// a delay; errors become the note, never the capture's failure.
func lowerForkDelay(ctx context.Context, cfg CaptureConfig, log *zap.Logger) *forkDelay {
	f := &forkDelay{log: log, cl: redis.NewClient(&redis.Options{
		Addr: cfg.Addr, Username: cfg.Username, Password: cfg.Password,
		Protocol: 2, DisableIdentity: true, MaxRetries: -1,
		DialTimeout: cfg.DialTimeout, ReadTimeout: cfg.DialTimeout, WriteTimeout: cfg.DialTimeout,
		PoolSize: 1,
	})}
	// not ended by the capture's ctx: a SET the shard ran but whose reply a
	// cancel cut off would leave the delay at 0 with nothing to set it back
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*cfg.DialTimeout)
	defer cancel()
	vals, err := f.cl.ConfigGet(ctx, "repl-diskless-sync*").Result()
	if err != nil {
		f.note = fmt.Sprintf("CONFIG GET %s refused (%v): the fork waits for the shard's delay", forkDelaySetting, err)
		log.Warn("cannot read the shard's fork delay; the capture waits for it", zap.Error(err))
		return f
	}
	delay := vals[forkDelaySetting]
	if vals["repl-diskless-sync"] != "yes" || delay == "0" || delay == "" {
		return f // a disk-based sync forks at once
	}
	if err := f.cl.ConfigSet(ctx, forkDelaySetting, "0").Err(); err != nil {
		f.note = fmt.Sprintf("CONFIG SET %s 0 refused (%v): the fork waits %s s", forkDelaySetting, err, delay)
		log.Warn("cannot lower the shard's fork delay; the capture waits for it",
			zap.String("repl_diskless_sync_delay", delay), zap.Error(err))
		return f
	}
	f.was = delay
	log.Info("fork delay lowered for the capture", zap.String("setting", forkDelaySetting),
		zap.String("was", delay), zap.String("now", "0"))
	return f
}

// restore sets the delay back and closes the connection; idempotent.
func (f *forkDelay) restore() {
	if f == nil || f.cl == nil {
		return
	}
	defer func() { f.cl.Close(); f.cl = nil }()
	if f.was == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.cl.ConfigSet(ctx, forkDelaySetting, f.was).Err(); err != nil {
		f.log.Warn("cannot set the shard's fork delay back; set it by hand", zap.String("setting", forkDelaySetting),
			zap.String("value", f.was), zap.Error(err))
		return
	}
	f.log.Info("fork delay set back", zap.String("setting", forkDelaySetting), zap.String("value", f.was))
}
