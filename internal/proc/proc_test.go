package proc

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A server started on a port that another one took between the pick and
// the bind must not take the other's answer for its own readiness: only
// the process holding the listening socket listens on the port.
func TestListensOn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if !ListensOn(os.Getpid(), port) {
		t.Errorf("ListensOn(self, %d) = false for the listener this process holds", port)
	}
	p, err := Start(exec.Command("sleep", "10"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if ListensOn(p.PID(), port) {
		t.Errorf("ListensOn says a child that binds nothing holds port %d", port)
	}
}

// What a process printed before it exited is there to explain the exit.
func TestOutputAfterExit(t *testing.T) {
	p, err := Start(exec.Command("sh", "-c", "echo one; echo two >&2; exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("sh did not exit")
	}
	if got, want := p.Output(5), "one\ntwo"; got != want {
		t.Errorf("Output = %q, want %q", got, want)
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Err = %v, want exit status 3", err)
	}
	p.Kill() // an exited process: no-op, no hang
	p.Stop(time.Second)
}
