package snapshot

import (
	"strconv"
	"strings"
	"time"
)

// What a job reports: its State, its JobPhase, and the Status that PROXY
// SNAPSHOT STATUS renders.

// State is where a job stands as a whole.
type State string

const (
	StateRunning State = "running"
	StateDone    State = "done"
	StateFailed  State = "failed"
)

// JobPhase is the step a running job is in; a failed job keeps the phase
// it failed in.
type JobPhase string

const (
	// PhaseCapturing: replication handshakes, waiting for every fork.
	PhaseCapturing JobPhase = "capturing"
	// PhaseCutting: the barrier and the offsets, then receiving the RDBs
	// and each command stream up to its cut offset.
	PhaseCutting JobPhase = "cutting"
	// PhaseVerifying: reading back every RDB and tail.
	PhaseVerifying JobPhase = "verifying"
	// PhaseWriting: the manifest, fsyncs and the rename.
	PhaseWriting JobPhase = "writing"
	// PhaseComplete: the snapshot is in place.
	PhaseComplete JobPhase = "done"
)

// Status is a job's state at one moment.
type Status struct {
	State State
	Phase JobPhase
	ID    string
	Name  string
	// Dir is the snapshot's directory: where it will be while running,
	// where it is when done, empty when failed (nothing is left).
	Dir    string
	Epoch  uint64
	Shards int
	// Keys is the keys at the cut over all shards (known once cut).
	Keys int64
	// Bytes is the size of the snapshot's files; while running, the RDB
	// bytes received so far.
	Bytes int64
	// PauseUS is how long client commands were held by the barrier, in
	// microseconds, from the call to Pause to the return of resume.
	PauseUS int64
	Error   string
	Warning string // JobConfig.Warning
	// ForkDelay says which shards the capture waited on for their
	// repl-diskless-sync-delay, and why (Stream.ForkNote); empty when
	// none.
	ForkDelay string
	Started   time.Time
	Finished  time.Time
}

// Info renders the status as INFO-style "field:value" lines (CRLF
// terminated), for PROXY SNAPSHOT STATUS. Times are Unix seconds (0 when
// not yet); an error is put on one line.
func (s Status) Info() string {
	var b strings.Builder
	field := func(k, v string) {
		b.WriteString(k)
		b.WriteByte(':')
		b.WriteString(v)
		b.WriteString("\r\n")
	}
	unix := func(t time.Time) string {
		if t.IsZero() {
			return "0"
		}
		return strconv.FormatInt(t.Unix(), 10)
	}
	elapsed := time.Duration(0)
	if !s.Started.IsZero() {
		end := s.Finished
		if end.IsZero() {
			end = time.Now()
		}
		elapsed = end.Sub(s.Started)
	}
	field("state", string(s.State))
	field("phase", string(s.Phase))
	field("id", s.ID)
	field("name", s.Name)
	field("dir", s.Dir)
	field("epoch", strconv.FormatUint(s.Epoch, 10))
	field("shards", strconv.Itoa(s.Shards))
	field("keys", strconv.FormatInt(s.Keys, 10))
	field("bytes", strconv.FormatInt(s.Bytes, 10))
	field("pause_us", strconv.FormatInt(s.PauseUS, 10))
	field("started", unix(s.Started))
	field("finished", unix(s.Finished))
	field("elapsed_ms", strconv.FormatInt(elapsed.Milliseconds(), 10))
	field("error", strings.NewReplacer("\r", " ", "\n", " ").Replace(s.Error))
	if s.Warning != "" {
		field("warning", strings.NewReplacer("\r", " ", "\n", " ").Replace(s.Warning))
	}
	if s.ForkDelay != "" {
		field("fork_delay", strings.NewReplacer("\r", " ", "\n", " ").Replace(s.ForkDelay))
	}
	return b.String()
}
