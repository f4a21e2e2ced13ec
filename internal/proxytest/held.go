package proxytest

import (
	"testing"
	"time"
)

// InBackground runs fn, a command a test expects a pause to hold, and
// returns a channel that receives its error once it returns.
func InBackground(fn func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

// Held fails tb unless ch (from InBackground) stays empty for d.
func Held(tb testing.TB, ch <-chan error, what string, d time.Duration) {
	tb.Helper()
	select {
	case err := <-ch:
		tb.Fatalf("%s answered during the pause: %v", what, err)
	case <-time.After(d):
	}
}

// Released fails tb unless ch (from InBackground) receives nil within d.
func Released(tb testing.TB, ch <-chan error, what string, d time.Duration) {
	tb.Helper()
	select {
	case err := <-ch:
		if err != nil {
			tb.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		tb.Fatalf("%s still held %s after the pause ended", what, d)
	}
}
