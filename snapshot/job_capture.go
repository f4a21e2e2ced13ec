package snapshot

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// The job's captures: started in parallel up to every fork, and stopped in
// parallel at the cut.

// startCaptures starts a capture of every shard in parallel and returns
// once every one has its fork offset. The first failure closes the others,
// including a capture that fails after its own fork while other shards are
// still to fork; so does ForkTimeout. The captures live as long as ctx.
func (j *Job) startCaptures(ctx context.Context) ([]*Stream, error) {
	n := j.cfg.Table.NumShards()
	// Each capture's lifetime is ctx; forkCtx ends it early on a failure
	// of another shard or the fork timeout, and is canceled with ctx.
	forkCtx, forkCancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(j.cfg.ForkTimeout, func() {
		forkCancel(fmt.Errorf("%w: not every shard forked within the fork timeout (%s)", ErrTimeout, j.cfg.ForkTimeout))
	})
	streams := make([]*Stream, n)
	var (
		wg       sync.WaitGroup
		watchers sync.WaitGroup
		mu       sync.Mutex
		first    error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		forkCancel(err)
	}
	forked := make(chan struct{}) // closed once every capture has returned
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := DefaultCaptureConfig()
			cc.Addr = j.captureAddr(forkCtx, i)
			cc.Username = j.cfg.Username
			cc.Password = j.cfg.Password
			sink, err := j.stage.rdb(forkCtx, j.rdbName(i))
			if err != nil {
				fail(err)
				return
			}
			cc.RDB = sink
			cc.CheckRDB = true
			cc.KeepForkDelay = j.cfg.KeepForkDelay
			cc.TailPath = j.stage.tailPath(j.tailName(i))
			cc.DialTimeout = j.cfg.DialTimeout
			cc.LinkTimeout = j.cfg.LinkTimeout
			cc.Verify = nil // the job verifies, with more checks, after every cut
			cc.Logger = j.log
			st, err := Capture(forkCtx, cc)
			if err != nil {
				fail(err)
				return
			}
			streams[i] = st
			// A capture that ends now (its shard died during the
			// transfer) would otherwise be noticed only at the cut,
			// after every other shard forked.
			watchers.Add(1)
			go func() {
				defer watchers.Done()
				select {
				case <-st.Done():
					if err := st.Err(); err != nil {
						fail(err)
					}
				case <-forked:
				}
			}()
		}()
	}
	wg.Wait()
	close(forked)
	watchers.Wait()
	fired := !timer.Stop()
	if first == nil && fired {
		first = context.Cause(forkCtx)
	}
	if first != nil {
		for _, st := range streams {
			if st != nil {
				st.Close()
			}
		}
		forkCancel(first)
		return nil, first
	}
	// forkCtx stays the captures' lifetime from here on; it ends with ctx.
	return streams, nil
}

// stopAll cuts every capture at its offset, in parallel. The first failure
// closes the others.
func (j *Job) stopAll(ctx context.Context, streams []*Stream, cut cutPoint) ([]Result, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make([]Result, len(streams))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := st.StopAt(ctx, cut.shards[i].offset)
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel(err)
				return
			}
			results[i] = res
		}()
	}
	wg.Wait()
	return results, first
}
