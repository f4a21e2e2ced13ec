package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ReshardOptions tell Reshard which proxy to reshard onto which targets.
type ReshardOptions struct {
	Addr     string   // the proxy
	Password string   // its requirepass, if any
	Targets  []string // PROXY RESHARD arguments: addr or addr=ranges
	Poll     time.Duration
}

// reshardPhases maps the `*_ms` fields of PROXY RESHARD STATUS to the
// phase they start, in order; finished_ms starts the final state.
var reshardPhases = []struct{ field, phase string }{
	{"started_ms", "copying"},
	{"catching_up_ms", "catching_up"},
	{"ready_ms", "ready"},
	{"cutover_ms", "cutover"},
	{"finished_ms", ""},
}

// Reshard starts PROXY RESHARD on opt.Addr, polls PROXY RESHARD STATUS
// every opt.Poll (default 20 ms) until a final state, and sends the phases
// on phases as the status reports them, timed by the proxy's `*_ms` fields
// ("reshard" when the command was sent, by the local clock). It closes
// phases when it returns, so a RunTimeline reading them ends its tail. It
// returns the last status; err is non-nil unless the state is done.
func Reshard(ctx context.Context, opt ReshardOptions, phases chan<- Phase) (status string, err error) {
	defer close(phases)
	if len(opt.Targets) == 0 {
		return "", fmt.Errorf("bench: reshard of %s: no targets", opt.Addr)
	}
	poll := opt.Poll
	if poll <= 0 {
		poll = 20 * time.Millisecond
	}
	a, err := dialAdmin(ctx, opt.Addr, opt.Password)
	if err != nil {
		return "", fmt.Errorf("bench: reshard of %s: %w", opt.Addr, err)
	}
	defer a.close()
	send := func(p Phase) bool {
		select {
		case phases <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	send(Phase{Name: "reshard", At: time.Now()})
	if _, err := a.do(ctx, append([]string{"PROXY", "RESHARD"}, opt.Targets...)...); err != nil {
		return "", fmt.Errorf("bench: PROXY RESHARD on %s: %w", opt.Addr, err)
	}
	sent := make(map[string]bool)
	for {
		status, err = a.do(ctx, "PROXY", "RESHARD", "STATUS")
		if err != nil {
			return status, fmt.Errorf("bench: PROXY RESHARD STATUS on %s: %w", opt.Addr, err)
		}
		f := ParseStatus(status)
		state := f["state"]
		final := state == "done" || state == "aborted" || state == "failed"
		for _, p := range reshardPhases {
			ms, _ := strconv.ParseInt(f[p.field], 10, 64)
			name := p.phase
			if name == "" {
				if !final {
					continue
				}
				name = state
			}
			if ms == 0 || sent[name] {
				continue
			}
			sent[name] = true
			if !send(Phase{Name: name, At: time.UnixMilli(ms)}) {
				return status, ctx.Err()
			}
		}
		if final {
			if state != "done" {
				return status, fmt.Errorf("bench: reshard of %s ended %s: %s", opt.Addr, state, f["error"])
			}
			return status, nil
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return status, ctx.Err()
		case <-t.C:
		}
	}
}

// ParseStatus splits INFO-style "field:value" lines into a map.
func ParseStatus(s string) map[string]string {
	out := make(map[string]string)
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
		if ok {
			out[k] = v
		}
	}
	return out
}
