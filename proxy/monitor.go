package proxy

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reshard/reshard/proxy/command"

	"github.com/reshard/reshard/proxy/internal/wire"
)

// MONITOR streams every command the proxy's clients send, as Redis streams
// its own: one status line per command, `+<unix time> [0 <client addr>]
// "arg" ...`, with the arguments quoted and escaped as Redis quotes them
// and passwords redacted. The proxy shows commands as clients sent them,
// before any split over shards; admin commands (CONFIG, CLIENT KILL,
// PROXY ...) are left out, as Redis leaves them out.
//
// A session formats its commands' lines while it plans them and hands them
// to every monitor once per pipeline. Each monitor has a writer goroutine
// and a buffer of its own, so a monitor that reads slowly never holds up the
// clients it watches; one whose buffer passes the output buffer limit is
// disconnected. With no monitor the data path pays one atomic load per
// command.
//
// As in Redis 7, a monitoring client's own commands get their replies and
// then show in its stream like anyone's, except those that touch the
// keyspace (read, write or may-replicate commands): Redis counts a monitor
// among its replicas, so those are refused with "-ERR Replica can't
// interact with the keyspace" and not shown. MONITOR again is ignored,
// without a reply; RESET ends monitoring.

// monitors is the server's set of monitoring clients.
type monitors struct {
	n    atomic.Int32
	mu   sync.RWMutex
	list []*monitor
}

// monitor is one client in MONITOR mode: its lines go out through a
// writer of its own (asyncwriter.go).
type monitor = asyncWriter

// monitoring is the session's side of MONITOR. The serving goroutine
// alone writes it; it writes active holding shown.mu, which other sessions'
// CLIENT LIST reads it under.
type monitoring struct {
	active *monitor // while in MONITOR mode
	lines  []byte   // MONITOR lines of the pipeline's commands, not yet fed
}

// monitorCmd turns the session into a monitor after the replies of what
// was planned before it.
func monitorCmd(s *session, _ *route, _ *command.Info, _ wire.Request) {
	s.step.next = func(*route) []byte {
		if s.mon.active != nil {
			return nil // already monitoring: ignored, as Redis does
		}
		// Registered before +OK goes out: a command any client sends
		// after the monitor has its +OK must show. The lines fed until
		// run starts wait in buf, so +OK still goes out before them.
		m := newAsyncWriter(s, "monitor")
		s.shown.mu.Lock()
		s.mon.active = m
		s.shown.mu.Unlock()
		srv := s.srv
		srv.monitors.mu.Lock()
		srv.monitors.list = append(srv.monitors.list, m)
		srv.monitors.n.Add(1)
		srv.monitors.mu.Unlock()
		s.conn.share()
		// queued, not written: the gate is held here, and a client
		// that does not read would hold it (clientConn). The serving
		// loop, or run, writes it before any line.
		s.conn.WriteRaw(wire.AppendStatus(nil, "OK"))
		go m.run()
		return nil
	}
}

// stopMonitor ends MONITOR mode (RESET, or the connection closing).
func (s *session) stopMonitor() {
	s.leaveMonitors()
	s.endMonitor()
}

// leaveMonitors takes the session's monitor out of the server's list: it is
// fed no line from then on, RESET's own included, as in Redis.
func (s *session) leaveMonitors() {
	m := s.mon.active
	if m == nil {
		return
	}
	srv := s.srv
	srv.monitors.mu.Lock()
	for i, o := range srv.monitors.list {
		if o == m {
			srv.monitors.list = append(srv.monitors.list[:i], srv.monitors.list[i+1:]...)
			srv.monitors.n.Add(-1)
			break
		}
	}
	srv.monitors.mu.Unlock()
}

// endMonitor stops the writer of a monitor that has left the list, and
// queues the lines it had not taken. It waits for the writer, which waits
// for the client to read, so it must not run inside the barrier's gate.
func (s *session) endMonitor() {
	m := s.mon.active
	if m == nil {
		return
	}
	// Lines fed before the monitor left the list go out before anything
	// the session writes next (RESET's reply), and none after it, as in
	// Redis.
	m.stop()
	s.shown.mu.Lock()
	s.mon.active = nil
	s.shown.mu.Unlock()
}

// feedMonitors hands the lines of a session's pipeline to every monitor.
func (srv *Server) feedMonitors(lines []byte) {
	srv.monitors.mu.RLock()
	for _, m := range srv.monitors.list {
		m.feed(lines)
	}
	srv.monitors.mu.RUnlock()
}

// monitored formats the monitor line of a command about to run, unless it
// is one Redis keeps from monitors. The caller has seen a monitor exist.
func (s *session) monitored(info *command.Info, args [][]byte) {
	s.mon.lines = s.monitorLine(s.mon.lines, info, args)
}

// monitorLine appends the monitor line of a command to dst, unless it is
// one Redis keeps from monitors.
func (s *session) monitorLine(dst []byte, info *command.Info, args [][]byte) []byte {
	if info.IsAdmin() {
		return dst
	}
	return appendMonitorLine(dst, time.Now(), s.conn.RemoteAddr(), info, args)
}

// flushMonitored hands the lines formatted so far to the monitors.
func (s *session) flushMonitored() {
	if len(s.mon.lines) > 0 {
		s.srv.feedMonitors(s.mon.lines)
		s.mon.lines = s.mon.lines[:0]
	}
}

var redacted = []byte("(redacted)")

// appendMonitorLine appends one MONITOR line. Passwords are redacted as
// Redis redacts them: every argument of AUTH, and the two after HELLO's
// AUTH.
func appendMonitorLine(b []byte, now time.Time, addr string, info *command.Info, args [][]byte) []byte {
	b = append(b, '+')
	b = appendStamp(b, now)
	b = append(b, " [0 "...)
	b = append(b, addr...)
	b = append(b, ']')
	from, to := redactedArgs(info, args)
	for i, a := range args {
		if i >= from && i < to {
			a = redacted
		}
		b = append(b, ' ')
		b = appendRepr(b, a)
	}
	return append(b, '\r', '\n')
}

// redactedArgs returns the arguments [from, to) of args that Redis shows
// redacted: every argument of AUTH, and the two after HELLO's AUTH.
func redactedArgs(info *command.Info, args [][]byte) (from, to int) {
	switch info.Name() {
	case "auth":
		return 1, len(args)
	case "hello":
		for i := 2; i < len(args); i++ {
			if bytes.EqualFold(args[i], []byte("auth")) {
				return i + 1, i + 3
			}
		}
	}
	return 0, 0
}

// appendRepr quotes s as Redis's sdscatrepr does.
func appendRepr(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, c := range s {
		switch c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\a':
			b = append(b, '\\', 'a')
		case '\b':
			b = append(b, '\\', 'b')
		default:
			if c >= 0x20 && c <= 0x7e {
				b = append(b, c)
			} else {
				b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			}
		}
	}
	return append(b, '"')
}

// appendStamp appends a MONITOR line's time: seconds.microseconds.
func appendStamp(b []byte, now time.Time) []byte {
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, '.')
	us := strconv.AppendInt(nil, int64(now.Nanosecond()/1000), 10)
	b = append(b, "000000"[len(us):]...)
	return append(b, us...)
}

// restamp gives every MONITOR line of lines the time now, in place (a
// stamp that would change width, past the year 2286, is left). A
// transaction's lines are made when its commands are queued and stamped
// again when EXEC runs them, which is when Redis shows them.
func restamp(lines []byte, now time.Time) {
	stamp := appendStamp(nil, now)
	for rest := lines; len(rest) > 0; {
		// a line's arguments are quoted: the first space and CRLF are its own
		if old := rest[1:bytes.IndexByte(rest, ' ')]; len(old) == len(stamp) {
			copy(old, stamp)
		}
		rest = rest[bytes.Index(rest, []byte("\r\n"))+2:]
	}
}
