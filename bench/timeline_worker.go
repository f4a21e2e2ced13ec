package bench

import (
	"context"
	"strconv"
	"time"

	"github.com/reshard/reshard/internal/resp"
)

// A timeline's load connection: the load's worker, which also writes its
// sequence key and accounts each batch in the current window of the series.

// tlWorker is a load connection that also writes its sequence key and
// feeds the series.
type tlWorker struct {
	*worker
	seqKey     []byte
	seq        int64
	acked      int64
	reconnects int64
	seqBuf     []byte

	win    int // index of cur
	cur    windowHist
	curOps int64
	curErr int64
}

func (w *tlWorker) runTimeline(ctx context.Context, end time.Time, stop <-chan struct{}, ser *series, interval time.Duration) {
	defer w.flush(ser)
	if w.conn != nil {
		w.setDeadline(ctx, end.Add(ioGrace))
	}
	next := time.Now()
	for ctx.Err() == nil && time.Now().Before(end) {
		select {
		case <-stop:
			return
		default:
		}
		if w.conn == nil {
			before := w.errors
			if !w.reconnect(ctx, end) {
				w.accountErrs(ser, time.Now(), w.errors-before)
				return
			}
			w.reconnects++
			w.accountErrs(ser, time.Now(), w.errors-before)
		}
		if interval > 0 {
			now := time.Now()
			if d := next.Sub(now); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
				case <-stop:
				case <-t.C:
				}
				t.Stop()
			} else if -d > 100*time.Millisecond {
				next = now // far behind (a stall): do not burst to catch up
			}
			next = next.Add(interval)
		}
		w.timelineBatch(ctx, ser)
	}
}

// timelineBatch is worker.batch with the sequence write as the first write.
func (w *tlWorker) timelineBatch(ctx context.Context, ser *series) {
	n := w.cfg.Pipeline
	buf := w.wbuf[:0]
	seqAt := -1
	for i := range n {
		isRead := w.rng.Float64() < w.cfg.ReadRatio
		w.key = strconv.AppendInt(append(w.key[:0], w.cfg.KeyPrefix...), int64(w.rng.IntN(w.cfg.Keyspace)), 10)
		switch {
		case isRead:
			buf = resp.AppendCommand(buf, cmdGet, w.key)
		case seqAt < 0:
			seqAt = i
			w.seq++
			w.seqBuf = strconv.AppendInt(w.seqBuf[:0], w.seq, 10)
			buf = resp.AppendCommand(buf, cmdSet, w.seqKey, w.seqBuf)
		default:
			buf = resp.AppendCommand(buf, cmdSet, w.key, w.value)
		}
	}
	w.wbuf = buf
	t0 := time.Now()
	if _, err := w.conn.Write(buf); err != nil {
		before := w.errors
		w.broken(ctx, n, err)
		w.accountErrs(ser, time.Now(), w.errors-before)
		return
	}
	for i := range n {
		isErr, text, err := w.readResult()
		now := time.Now()
		if err != nil {
			before := w.errors
			w.broken(ctx, n-i, err)
			w.accountErrs(ser, now, w.errors-before)
			return
		}
		if isErr {
			w.errors++
			w.sample(text)
			w.accountErrs(ser, now, 1)
			continue
		}
		if i == seqAt {
			w.acked = w.seq
		}
		lat := now.Sub(t0)
		w.hist.Record(lat)
		w.ops++
		w.account(ser, now, lat)
	}
}

// account adds one reply of latency lat at now to the worker's current
// window, handing the window to ser first when now is past it.
func (w *tlWorker) account(ser *series, now time.Time, lat time.Duration) {
	w.moveTo(ser, now)
	w.cur.record(lat)
	w.curOps++
}

// accountErrs adds n errors at now, like account.
func (w *tlWorker) accountErrs(ser *series, now time.Time, n int64) {
	if n <= 0 {
		return
	}
	w.moveTo(ser, now)
	w.curErr += n
}

func (w *tlWorker) moveTo(ser *series, now time.Time) {
	if idx := int(now.Sub(ser.start) / ser.width); idx != w.win {
		w.flush(ser)
		w.win = idx
	}
}

func (w *tlWorker) flush(ser *series) {
	if w.curOps == 0 && w.curErr == 0 {
		return
	}
	ser.add(w.win, &w.cur, w.curOps, w.curErr)
	w.cur = windowHist{}
	w.curOps, w.curErr = 0, 0
}
