package proxy

import (
	"github.com/reshard/reshard/proxy/command"

	"github.com/reshard/reshard/proxy/internal/wire"
)

// RESET, and release when the client goes: what a session holds beyond its
// client connection (a transaction's MULTI, a WATCH, MONITOR) let go.

// release frees what a closing session holds.
func (s *session) release() {
	s.stopMonitor()
	s.trackingRelease()
	if s.tx.conn != nil {
		s.tx.conn.NetConn.Close()
		s.tx.conn = nil
	}
	if s.watchConn != nil {
		s.watchConn.NetConn.Close()
		s.watchConn = nil
	}
}

// reset answers RESET as Redis does: out of any transaction and WATCH,
// replies on, RESP2, no name, and not authenticated where a password is set.
func reset(s *session, r *route, _ *command.Info, _ wire.Request) {
	s.txAbandon(r)
	s.shown.mu.Lock()
	s.tx = txState{}
	s.name = ""
	s.authed = s.srv.cfg.RequirePass == ""
	s.admin = s.authed && s.srv.cfg.AdminPassword == ""
	s.shown.mu.Unlock()
	// RESET turns replies back on before it answers, so OFF does not
	// silence its +RESET; a SKIP does, as in Redis.
	s.replyAlways = s.replyMode == replyOff
	s.replyMode = replyOn
	s.readFrom = s.srv.cfg.ReadFrom // out of READONLY, as in Redis Cluster
	if s.mon.active != nil {
		// Out of MONITOR mode: off the list now, and the writer stopped
		// outside the barrier's gate (endMonitor waits for the client to
		// read), so RESET's reply follows the lines the monitor still had.
		s.leaveMonitors()
		s.step.mayBlock = true
	}
	s.srv.tracker.disable(s) // out of tracking, as in Redis
	s.track.caching = false
	s.step.next = func(r *route) []byte {
		s.endMonitor()
		s.dropWatch(r)
		s.setProto(2)
		return wire.AppendStatus(nil, "RESET")
	}
}
