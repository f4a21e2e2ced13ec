package proxy

import (
	"crypto/subtle"
	"strconv"

	"github.com/reshard/reshard/proxy/command"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// AUTH and HELLO, and permitted, the check every command passes first: who
// a client is to the proxy. These are the proxy's own users, not the
// shards'.

// AUTH against the proxy's own users: "default" (--requirepass) and "admin"
// (--admin-password), which PROXY and admin commands require when set.
func auth(s *session, _ *route, _ *command.Info, c wire.Request) {
	args := c.Args[1:]
	if len(args) > 2 {
		s.errorReply("ERR syntax error")
		return
	}
	if len(args) == 1 && s.srv.cfg.RequirePass == "" {
		s.errorReply("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return
	}
	user, pass := []byte("default"), args[0]
	if len(args) == 2 {
		user, pass = args[0], args[1]
	}
	if msg := s.authenticate(user, pass); msg != "" {
		s.errorReply(msg)
		return
	}
	s.local(wire.AppendStatus(nil, "OK"))
}

// authenticate checks a user and password; it returns an error message or "".
func (s *session) authenticate(user, pass []byte) string {
	cfg := s.srv.cfg
	switch {
	case wire.EqualFold(user, "default"):
		if cfg.RequirePass != "" && !secretEqual(pass, cfg.RequirePass) {
			return wrongPass
		}
		s.shown.mu.Lock()
		s.authed, s.admin = true, cfg.AdminPassword == ""
		s.shown.mu.Unlock()
	case wire.EqualFold(user, "admin") && cfg.AdminPassword != "":
		if !secretEqual(pass, cfg.AdminPassword) {
			return wrongPass
		}
		s.shown.mu.Lock()
		s.authed, s.admin = true, true
		s.shown.mu.Unlock()
	default:
		return wrongPass
	}
	return ""
}

const wrongPass = "WRONGPASS invalid username-password pair or user is disabled."

func secretEqual(got []byte, want string) bool {
	return subtle.ConstantTimeCompare(got, []byte(want)) == 1
}

// permitted applies the authentication rules before a command runs; it
// returns the error for a refused command, or "".
func (s *session) permitted(info *command.Info, name []byte) string {
	if !s.authed {
		if info != nil && (info.Name() == "auth" || info.Name() == "hello" || info.Name() == "quit" || info.Name() == "reset") {
			return ""
		}
		return "NOAUTH Authentication required."
	}
	// CONFIG GET is flagged admin but clients probe it at connect time.
	if !s.admin && (info == nil && isProxyCommand(name) || info != nil && info.IsAdmin() && info.Name() != "config|get") {
		n := "proxy"
		if info != nil {
			n = info.Name()
		}
		return "NOPERM User default has no permissions to run the '" + n + "' command"
	}
	return ""
}

// hello answers HELLO [2|3] [AUTH user pass] [SETNAME name]. A RESP3
// session gets RESP3 replies from backend connections opened with HELLO 3;
// the proxy never mixes protocols on one connection.
func hello(s *session, _ *route, _ *command.Info, c wire.Request) {
	args := c.Args[1:]
	proto := s.proto
	if len(args) > 0 {
		switch string(args[0]) {
		case "2":
			proto = 2
		case "3":
			proto = 3
		default:
			if _, err := strconv.Atoi(string(args[0])); err == nil {
				s.errorReply("NOPROTO unsupported protocol version")
			} else {
				s.errorReply("ERR Protocol version is not an integer or out of range")
			}
			return
		}
		for i := 1; i < len(args); i++ {
			switch {
			case wire.EqualFold(args[i], "auth") && i+2 < len(args):
				if msg := s.authenticate(args[i+1], args[i+2]); msg != "" {
					s.errorReply(msg)
					return
				}
				i += 2
			case wire.EqualFold(args[i], "setname") && i+1 < len(args):
				s.shown.mu.Lock()
				s.name = string(args[i+1])
				s.shown.mu.Unlock()
				i++
			default:
				s.errorReply("ERR Syntax error in HELLO option '" + wire.Clip(args[i]) + "'")
				return
			}
		}
	}
	if !s.authed {
		s.errorReply("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	// The commands planned before HELLO go to backends of the protocol they
	// were sent in; those after it, of the new one.
	s.step.next = func(r *route) []byte {
		s.switchWatch(r, proto)
		s.setProto(proto)
		return nil
	}
	b := wire.AppendMapHeader(nil, 7, proto)
	b = resp.AppendBulkString(b, "server")
	b = resp.AppendBulkString(b, "redis")
	b = resp.AppendBulkString(b, "version")
	b = resp.AppendBulkString(b, s.srv.redisVersion())
	b = resp.AppendBulkString(b, "proto")
	b = wire.AppendInt(b, int64(proto))
	b = resp.AppendBulkString(b, "id")
	b = wire.AppendInt(b, int64(s.id))
	b = resp.AppendBulkString(b, "mode")
	b = resp.AppendBulkString(b, "standalone")
	b = resp.AppendBulkString(b, "role")
	b = resp.AppendBulkString(b, "master")
	b = resp.AppendBulkString(b, "modules")
	b = resp.AppendArrayHeader(b, 0)
	s.local(b)
}

// setProto switches the protocol of the session's replies, and so the
// backend connections its commands go to.
func (s *session) setProto(proto int) {
	s.shown.mu.Lock()
	s.proto = proto
	s.shown.mu.Unlock()
}
