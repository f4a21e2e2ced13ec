package migrate

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// ReshardTimes are when the job entered each phase; zero for a phase it
// has not reached.
type ReshardTimes struct {
	Started    time.Time
	Copying    time.Time
	CatchingUp time.Time // every source copied, its stream being applied
	Ready      time.Time // first time every lag was within the bounds
	Cutover    time.Time
	Finished   time.Time
}

// ReshardSourceStatus is one source's progress.
type ReshardSourceStatus struct {
	Addr string
	// Copied: its RDB has been written into the targets.
	Copied bool
	// ForkOffset is where the copy stands; Received the stream offset the
	// capture has received, Applied what every target has answered.
	ForkOffset, Received, Applied int64
	LagBytes                      int64
	LagTime                       time.Duration
	KeysCopied                    int64
	BytesCopied, RDBBytes         int64
	// StreamCommands counts the stream's data commands applied.
	StreamCommands int64
	// Guarded is the number of expiry guards waiting (reshard_expiry.go).
	Guarded int64
	// ForkNote says why the capture waited for the source's
	// repl-diskless-sync-delay (snapshot.Stream.ForkNote); empty when it
	// did not.
	ForkNote string
}

// ReshardStatus is a reshard's state at one moment.
type ReshardStatus struct {
	ID    string
	State ReshardState
	// Epoch is the new table's.
	Epoch   uint64
	Manual  bool
	Sources []ReshardSourceStatus
	// Rate is the copy's pace in keys per second, 0 for none.
	Rate    int64
	Targets int
	// LagBytes and LagTime are the largest over the sources.
	LagBytes int64
	LagTime  time.Duration
	// KeysCopied and BytesCopied are the RDB keys and bytes written into
	// the targets so far, over every source; RDBBytes the RDBs' total.
	KeysCopied, BytesCopied, RDBBytes int64
	StreamCommands                    int64
	// PauseUS is how long the barrier was held at the cutover (from the
	// call to Pause to resume), in microseconds; 0 before.
	PauseUS int64
	Times   ReshardTimes
	// Err is why the job was aborted or failed.
	Err error
}

// Status returns the job's current state.
func (j *ReshardJob) Status() ReshardStatus {
	j.mu.Lock()
	st := ReshardStatus{
		ID: j.id, State: j.state, Epoch: j.cfg.To.Epoch(), Manual: j.cfg.Manual,
		Targets: j.cfg.To.NumShards(), PauseUS: j.pause.Microseconds(), Times: j.times, Err: j.err,
		Rate: j.cfg.Rate,
	}
	final := j.finalLag
	j.mu.Unlock()
	now := time.Now()
	for i, s := range j.sources {
		ss := ReshardSourceStatus{Addr: s.addr, Copied: s.copied.Load(), StreamCommands: s.commands.Load(),
			Guarded: s.guarded.Load(), RDBBytes: s.rdbSize.Load(), ForkOffset: s.fork.Load()}
		var l sourceLag
		if s.started.Load() {
			ss.ForkNote = s.st.ForkNote()
			ss.KeysCopied, ss.BytesCopied = s.j.keysDone.Load(), s.j.bytesDone.Load()
			l = s.lag(now)
		}
		if final != nil {
			l = final[i]
		}
		ss.Received, ss.Applied, ss.LagBytes, ss.LagTime = l.received, l.applied, l.bytes, l.time
		st.Sources = append(st.Sources, ss)
		st.LagBytes = max(st.LagBytes, ss.LagBytes)
		st.LagTime = max(st.LagTime, ss.LagTime)
		st.KeysCopied += ss.KeysCopied
		st.BytesCopied += ss.BytesCopied
		st.RDBBytes += ss.RDBBytes
		st.StreamCommands += ss.StreamCommands
	}
	return st
}

// WriteInfo writes the status as INFO-style "field:value" lines (CRLF
// ended, as Redis writes INFO): state, id, epoch, manual, sources,
// targets, lag_bytes, lag_ms, keys_copied, bytes_copied, rdb_bytes,
// stream_commands, pause_us, the unix milliseconds each phase started
// (0 when not reached) and elapsed_ms, then per source
// sourceN:addr=...,copied=...,fork_offset=...,received=...,applied=...,
// lag_bytes=...,lag_ms=...,keys_copied=...,guarded=..., and error (empty
// unless aborted or failed). Passwords are never part of it.
func (s ReshardStatus) WriteInfo(w io.Writer) error {
	var b strings.Builder
	line := func(k string, v any) { fmt.Fprintf(&b, "%s:%v\r\n", k, v) }
	ms := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixMilli()
	}
	b01 := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	line("state", s.State)
	line("id", s.ID)
	line("epoch", s.Epoch)
	line("manual", b01(s.Manual))
	line("sources", len(s.Sources))
	line("targets", s.Targets)
	line("lag_bytes", s.LagBytes)
	line("lag_ms", s.LagTime.Milliseconds())
	line("keys_copied", s.KeysCopied)
	line("bytes_copied", s.BytesCopied)
	line("rdb_bytes", s.RDBBytes)
	line("stream_commands", s.StreamCommands)
	line("pause_us", s.PauseUS)
	line("started_ms", ms(s.Times.Started))
	line("catching_up_ms", ms(s.Times.CatchingUp))
	line("ready_ms", ms(s.Times.Ready))
	line("cutover_ms", ms(s.Times.Cutover))
	line("finished_ms", ms(s.Times.Finished))
	end := s.Times.Finished
	if end.IsZero() {
		end = time.Now()
	}
	line("elapsed_ms", end.Sub(s.Times.Started).Milliseconds())
	line("rate", s.Rate)
	for i, src := range s.Sources {
		line(fmt.Sprintf("source%d", i), fmt.Sprintf("addr=%s,copied=%d,fork_offset=%d,received=%d,applied=%d,lag_bytes=%d,lag_ms=%d,keys_copied=%d,stream_commands=%d,guarded=%d",
			src.Addr, b01(src.Copied), src.ForkOffset, src.Received, src.Applied, src.LagBytes, src.LagTime.Milliseconds(), src.KeysCopied, src.StreamCommands, src.Guarded))
		if src.ForkNote != "" {
			line(fmt.Sprintf("source%d_fork_delay", i), strings.ReplaceAll(src.ForkNote, "\n", " "))
		}
	}
	errText := ""
	if s.Err != nil {
		errText = strings.ReplaceAll(s.Err.Error(), "\n", "; ")
	}
	line("error", errText)
	_, err := io.WriteString(w, b.String())
	return err
}
