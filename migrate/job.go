package migrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// RestoreJob is a Restore running in the background, for the proxy's
// PROXY RESTORE command: start it, poll its Status, cancel it, wait for it.
// Its methods are safe for concurrent use.
type RestoreJob struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	progress Progress
	report   Report
	err      error
	finished bool
}

// JobState is where a RestoreJob is.
type JobState string

// The states a RestoreJob reports.
const (
	JobRunning JobState = "running"
	JobDone    JobState = "done"
	JobFailed  JobState = "failed"
)

// RestoreStatus is a RestoreJob's state at one moment.
type RestoreStatus struct {
	// ID is the job's (RestoreJob.ID).
	ID       string
	State    JobState
	Progress Progress
	// Report is complete once State is not JobRunning.
	Report Report
	// Err is set when State is JobFailed.
	Err error
}

// StartRestore starts Restore(ctx, cfg) in a goroutine the job owns; the
// goroutine ends when the restore does (Cancel makes that prompt).
// cfg.Progress, if set, is still called.
func StartRestore(ctx context.Context, cfg RestoreConfig) *RestoreJob {
	ctx, cancel := context.WithCancel(ctx)
	var nonce [2]byte
	_, _ = rand.Read(nonce[:])
	j := &RestoreJob{id: "restore-" + time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(nonce[:]),
		cancel: cancel, done: make(chan struct{})}
	if cfg.Logger != nil {
		cfg.Logger = cfg.Logger.With(zap.String("job", j.id)) // every line names the job
	}
	user := cfg.Progress
	cfg.Progress = func(p Progress) {
		j.mu.Lock()
		j.progress = p
		j.mu.Unlock()
		if user != nil {
			user(p)
		}
	}
	go func() {
		defer close(j.done)
		defer cancel()
		rep, err := Restore(ctx, cfg)
		j.mu.Lock()
		j.report, j.err, j.finished = rep, err, true
		j.mu.Unlock()
	}()
	return j
}

// ID names the job: restore-<UTC start time>-<4 hex digits>.
func (j *RestoreJob) ID() string { return j.id }

// Status returns the job's current state.
func (j *RestoreJob) Status() RestoreStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := RestoreStatus{ID: j.id, State: JobRunning, Progress: j.progress}
	if j.finished {
		s.State, s.Report, s.Err = JobDone, j.report, j.err
		if j.err != nil {
			s.State = JobFailed
		}
	}
	return s
}

// Cancel stops the job; Wait then returns its error (context.Canceled
// unless it had failed or finished already).
func (j *RestoreJob) Cancel() { j.cancel() }

// Done is closed when the job has ended.
func (j *RestoreJob) Done() <-chan struct{} { return j.done }

// Wait blocks until the job ends and returns what Restore returned.
func (j *RestoreJob) Wait() (Report, error) {
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.report, j.err
}

// WriteInfo writes the status as INFO-style "field:value" lines (CRLF
// ended, as Redis writes INFO): id, state, phase, keys, keys_total, bytes,
// bytes_total, keys_per_sec, elapsed_sec, eta_sec, then when finished
// keys_written, keys_held (after a failure part-way: the targets'
// DBSIZE), keys_expired, big_keys and error (empty on success).
func (s RestoreStatus) WriteInfo(w io.Writer) error {
	var b strings.Builder
	line := func(k string, v any) { fmt.Fprintf(&b, "%s:%v\r\n", k, v) }
	p := s.Progress
	line("id", s.ID)
	line("state", s.State)
	phase := p.Phase
	if phase == "" {
		phase = "preflight"
	}
	line("phase", phase)
	line("keys", p.Keys)
	line("keys_total", p.KeysTotal)
	line("bytes", p.Bytes)
	line("bytes_total", p.BytesTotal)
	line("keys_per_sec", fmt.Sprintf("%.0f", p.KeysPerSec))
	line("elapsed_sec", fmt.Sprintf("%.1f", p.Elapsed.Seconds()))
	line("eta_sec", fmt.Sprintf("%.0f", p.ETA.Round(time.Second).Seconds()))
	if s.State != JobRunning {
		var written, expired, big int64
		for _, t := range s.Report.Targets {
			written += t.Written
			expired += t.Expired
			big += t.BigKeys
		}
		line("keys_written", written)
		if s.Report.Partial {
			// What the targets hold (DBSIZE), which a failure leaves
			// above keys_written; -1 when one did not answer.
			var held int64
			for _, t := range s.Report.Targets {
				if t.Holds < 0 {
					held = -1
					break
				}
				held += t.Holds
			}
			line("keys_held", held)
		}
		line("keys_expired", expired)
		line("big_keys", big)
		errText := ""
		if s.Err != nil {
			// One line: INFO fields cannot span lines.
			errText = strings.ReplaceAll(s.Err.Error(), "\n", "; ")
		}
		line("error", errText)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
