package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// After a restore that failed once writing had begun, the report says what
// each target really holds and how to go on. The counts of keys
// acknowledged are not that: commands sent before the failure are
// executed by the target whether or not their reply is read (a restore
// stopped by one target's error reported 1126 keys written while the
// targets held 1700). So the restore closes its connections, waits until
// each target has let go of them (CLIENT LIST: a target executes what it
// has read from a connection before it frees it), and asks DBSIZE.

// settleTimeout bounds the wait for a target to free the connections and
// answer DBSIZE.
const settleTimeout = 5 * time.Second

// partial records each target's DBSIZE in the report and returns err with
// the counts and the ways to resume.
func (j *job) partial(ctx context.Context, err error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	j.rep.Partial = true
	held := make([]string, len(j.targets))
	var wg sync.WaitGroup
	for i, t := range j.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &j.rep.Targets[i]
			n, derr := t.settledDBSize(ctx)
			if derr != nil {
				tr.Holds = -1
				held[i] = fmt.Sprintf("%s did not answer DBSIZE (%v)", t.info.Addr, derr)
				return
			}
			tr.Holds = n
			held[i] = fmt.Sprintf("%s %d", t.info.Addr, n)
		}()
	}
	wg.Wait()
	var before int64
	for _, t := range j.targets {
		before += t.info.Keys
	}
	hint := "; to finish, rerun with REPLACE (--replace), which overwrites the keys already written, or with FLUSH (--flush) to empty the targets and start over"
	if before > 0 && !j.cfg.Flush {
		hint += fmt.Sprintf(" (FLUSH also deletes the %d keys they held before)", before)
	}
	return fmt.Errorf("%w; the targets hold now (DBSIZE): %s%s", err, strings.Join(held, ", "), hint)
}

// settledDBSize waits until the target has freed the restore's
// connections to it, then reads DBSIZE.
func (t *target) settledDBSize(ctx context.Context) (int64, error) {
	var mine []string
	for _, p := range t.pipes {
		mine = append(mine, "addr="+p.local+" ")
	}
	for len(mine) > 0 {
		list, err := t.admin.ClientList(ctx).Result()
		if err != nil {
			return 0, err
		}
		still := mine[:0]
		for _, m := range mine {
			if strings.Contains(list, m) {
				still = append(still, m)
			}
		}
		mine = still
		if len(mine) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return 0, errors.New("the restore's connections are still open")
		case <-time.After(10 * time.Millisecond):
		}
	}
	return t.admin.DBSize(ctx).Result()
}
