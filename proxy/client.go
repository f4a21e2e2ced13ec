package proxy

import (
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/reshard/reshard/proxy/command"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// CLIENT subcommands about the proxy's own clients. The shards' clients are
// the proxy's backend connections, so nothing here is forwarded.

// shownState is what other sessions read of this one: CLIENT LIST, CLIENT
// INFO, CLIENT KILL's filters and INFO. mu also guards the fields of
// settings and mon that they read (see there): the serving goroutine writes
// those only holding it, and reads them without it.
type shownState struct {
	mu      sync.Mutex
	cmd     string       // the last command of the last pipeline, written once per pipeline (showCmd)
	created time.Time    // set before the session is registered, then only read
	lastCmd atomic.Int64 // unix nanoseconds of the last command
}

// showCmd lets other sessions' CLIENT LIST see the last command planned.
func (s *session) showCmd() {
	if s.shown.cmd != s.cmdName {
		s.shown.mu.Lock()
		s.shown.cmd = s.cmdName
		s.shown.mu.Unlock()
	}
}

// printable reports whether v has only the characters Redis allows in a
// client's name and library attributes: '!' to '~'.
func printable(v []byte) bool {
	for _, ch := range v {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

func clientSetName(s *session, _ *route, _ *command.Info, c wire.Request) {
	if !printable(c.Args[2]) {
		s.errorReply("ERR Client names cannot contain spaces, newlines or special characters.")
		return
	}
	s.shown.mu.Lock()
	s.name = string(c.Args[2])
	s.shown.mu.Unlock()
	s.local(wire.AppendStatus(nil, "OK"))
}

func clientGetName(s *session, _ *route, _ *command.Info, _ wire.Request) {
	if s.name == "" {
		s.local(wire.AppendNullIn(nil, s.proto))
		return
	}
	s.local(resp.AppendBulkString(nil, s.name))
}

// register and unregister keep the sessions CLIENT LIST and KILL see.
func (srv *Server) register(s *session)   { srv.sessions.Store(s.id, s) }
func (srv *Server) unregister(s *session) { srv.sessions.Delete(s.id) }

// describe renders one CLIENT LIST line for s, in Redis's field order
// (the fields the proxy has no figure for are left out; parsers such as
// go-redis's skip what they do not find). self: s is the session asking,
// whose cmd is the command running.
func (s *session) describe(now time.Time, self bool) string {
	s.shown.mu.Lock()
	flags, multi, name, proto, cmd := "N", -1, s.name, s.proto, s.shown.cmd
	switch {
	case s.mon.active != nil:
		flags = "O"
	case s.subscriptions() > 0:
		flags = "P"
	case s.tx.active:
		flags = "x"
	}
	if s.tx.active {
		multi = len(s.tx.stats)
	}
	omem := s.conn.streamed()
	if m := s.mon.active; m != nil {
		omem += m.queued()
	}
	s.shown.mu.Unlock()
	if self {
		cmd = s.cmdName
	}
	// CLIENT TRACKING's flags and redirect, under the tracker's lock
	t := s.srv.tracker
	t.mu.Lock()
	tracking, bcast, broken, redir := s.track.on, s.track.bcast, s.track.broken, int64(s.track.redirect)
	t.mu.Unlock()
	if tracking {
		f := "t"
		if broken {
			f += "R"
		}
		if bcast {
			f += "B"
		}
		if flags == "N" {
			flags = f
		} else {
			flags += f
		}
	} else {
		redir = -1
	}
	laddr := ""
	if nc := s.conn.NetConn(); nc != nil {
		laddr = nc.LocalAddr().String()
	}
	var b strings.Builder
	field := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	num := func(k string, v int64) { field(k, strconv.FormatInt(v, 10)) }
	field("id", strconv.FormatUint(s.id, 10))
	field("addr", s.conn.RemoteAddr())
	field("laddr", laddr)
	num("fd", int64(s.conn.fd()))
	field("name", name)
	num("age", int64(now.Sub(s.shown.created).Seconds()))
	num("idle", int64(now.Sub(time.Unix(0, s.shown.lastCmd.Load())).Seconds()))
	field("flags", flags)
	field("db", "0")
	num("sub", s.sub.kinds[subChannel].Load())
	num("psub", s.sub.kinds[subPattern].Load())
	num("ssub", s.sub.kinds[subShard].Load())
	num("multi", int64(multi))
	// the client's read buffer (wire.Reader.Shown) stands for Redis's
	// query buffer; tot-mem counts it, the argument lists, the output
	// queued and the session itself
	qbuf, qfree, qsize, argv := s.conn.rd.Shown()
	num("qbuf", qbuf)
	num("qbuf-free", qfree)
	num("argv-mem", argv)
	// a transaction's commands are queued on its shard, not in the proxy
	num("multi-mem", 0)
	num("rbs", qsize) // the read buffer, Redis's rbs and rbp alike
	num("rbp", qsize)
	// the replies of a pipeline go out as it ends: none are held between
	// pipelines but a subscriber's or monitor's queue (omem)
	num("obl", 0)
	num("oll", 0)
	num("omem", int64(omem))
	num("tot-mem", qsize+argv+int64(omem)+sessionSize)
	events := "r"
	if omem > 0 {
		events = "rw"
	}
	field("events", events)
	field("cmd", cmd)
	field("user", s.user())
	num("redir", redir)
	num("resp", int64(proto))
	return b.String()
}

// sessionSize is the memory of a client of the proxy that CLIENT LIST's
// tot-mem counts besides its buffers: its session and connection.
const sessionSize = int64(unsafe.Sizeof(session{}) + unsafe.Sizeof(clientConn{}))

// user is the user name CLIENT LIST shows: admin for a session that
// authenticated with the admin password, else default.
func (s *session) user() string {
	s.shown.mu.Lock()
	defer s.shown.mu.Unlock()
	if s.admin && s.srv.cfg.AdminPassword != "" {
		return "admin"
	}
	return "default"
}

// clientType is the type CLIENT LIST and KILL filter on: pubsub while the
// client has subscriptions, as in Redis, else normal. (No proxy client is a
// replica or a master.)
func (s *session) clientType() string {
	if s.subscriptions() > 0 {
		return "pubsub"
	}
	return "normal"
}

// pubsubClients counts the clients CLIENT LIST TYPE pubsub shows.
func (srv *Server) pubsubClients() int {
	n := 0
	srv.sessions.Range(func(_, v any) bool {
		if v.(*session).clientType() == "pubsub" {
			n++
		}
		return true
	})
	return n
}

// parseClientType reads the argument of a TYPE filter as Redis does
// (replica and slave are one type); the message is the error for a type
// Redis does not know.
func parseClientType(arg []byte) (typ, msg string) {
	switch t := strings.ToLower(string(arg)); t {
	case "normal", "pubsub", "master":
		return t, ""
	case "replica", "slave":
		return "replica", ""
	}
	return "", "ERR Unknown client type '" + wire.Clip(arg) + "'"
}

// clientList answers CLIENT LIST [TYPE type | ID id ...].
func clientList(s *session, _ *route, _ *command.Info, c wire.Request) {
	match := func(*session) bool { return true }
	switch {
	case len(c.Args) == 2:
	case len(c.Args) == 4 && wire.EqualFold(c.Args[2], "type"):
		typ, msg := parseClientType(c.Args[3])
		if msg != "" {
			s.errorReply(msg)
			return
		}
		match = func(o *session) bool { return o.clientType() == typ }
	case len(c.Args) >= 4 && wire.EqualFold(c.Args[2], "id"):
		want := map[uint64]bool{}
		for _, a := range c.Args[3:] {
			id, err := strconv.ParseUint(string(a), 10, 64)
			if err != nil {
				s.errorReply("ERR Invalid client ID")
				return
			}
			want[id] = true
		}
		match = func(o *session) bool { return want[o.id] }
	default:
		s.errorReply("ERR syntax error")
		return
	}
	now := time.Now()
	var b strings.Builder
	s.srv.sessions.Range(func(_, v any) bool {
		o := v.(*session)
		if match(o) {
			b.WriteString(o.describe(now, o == s))
			b.WriteByte('\n')
		}
		return true
	})
	s.local(wire.AppendVerbatim(nil, b.String(), s.proto))
}

func clientInfo(s *session, _ *route, _ *command.Info, _ wire.Request) {
	s.local(wire.AppendVerbatim(nil, s.describe(time.Now(), true)+"\n", s.proto))
}

// clientKill closes proxy clients: CLIENT KILL addr, or the filter form
// (ID, ADDR, LADDR, USER, TYPE, SKIPME).
func clientKill(s *session, _ *route, _ *command.Info, c wire.Request) {
	args := c.Args[2:]
	if len(args) == 1 { // old form: CLIENT KILL ip:port
		n := s.killWhere(func(o *session) bool { return o.conn.RemoteAddr() == string(args[0]) })
		if n == 0 {
			s.errorReply("ERR No such client")
			return
		}
		s.local(wire.AppendStatus(nil, "OK"))
		return
	}
	if len(args)%2 != 0 {
		s.errorReply("ERR syntax error")
		return
	}
	skipMe := true
	var tests []func(*session) bool
	for i := 0; i < len(args); i += 2 {
		val := string(args[i+1])
		switch {
		case wire.EqualFold(args[i], "id"):
			id, err := strconv.ParseUint(val, 10, 64)
			if err != nil || id == 0 || id > math.MaxInt64 { // Redis takes 1 to LLONG_MAX
				s.errorReply("ERR client-id should be greater than 0")
				return
			}
			tests = append(tests, func(o *session) bool { return o.id == id })
		case wire.EqualFold(args[i], "addr"):
			tests = append(tests, func(o *session) bool { return o.conn.RemoteAddr() == val })
		case wire.EqualFold(args[i], "laddr"):
			tests = append(tests, func(o *session) bool {
				nc := o.conn.NetConn()
				return nc != nil && nc.LocalAddr().String() == val
			})
		case wire.EqualFold(args[i], "user"):
			if val != "default" && (val != "admin" || s.srv.cfg.AdminPassword == "") {
				s.errorReply("ERR No such user '" + wire.Clip(args[i+1]) + "'")
				return
			}
			tests = append(tests, func(o *session) bool { return o.user() == val })
		case wire.EqualFold(args[i], "type"):
			typ, msg := parseClientType(args[i+1])
			if msg != "" {
				s.errorReply(msg)
				return
			}
			tests = append(tests, func(o *session) bool { return o.clientType() == typ })
		case wire.EqualFold(args[i], "skipme"):
			switch {
			case wire.EqualFold(args[i+1], "yes"):
				skipMe = true
			case wire.EqualFold(args[i+1], "no"):
				skipMe = false
			default:
				s.errorReply("ERR syntax error")
				return
			}
		default:
			s.errorReply("ERR syntax error")
			return
		}
	}
	n := s.killWhere(func(o *session) bool {
		if skipMe && o == s {
			return false
		}
		for _, t := range tests {
			if !t(o) {
				return false
			}
		}
		return true
	})
	s.local(wire.AppendInt(nil, int64(n)))
}

// killWhere closes the connections of the sessions match selects. Closing
// the socket ends the session's own goroutine at its next read; the session
// leaves the registry at once, as a killed client leaves Redis's CLIENT LIST,
// rather than whenever that goroutine gets to run. The caller itself (SKIPME
// no) is closed after its reply, as Redis closes it: it runs nothing more of
// its pipeline, but learns what it killed.
func (s *session) killWhere(match func(*session) bool) int {
	n := 0
	s.srv.sessions.Range(func(_, v any) bool {
		o := v.(*session)
		if match(o) {
			if o == s {
				s.quit = true
			} else if nc := o.conn.NetConn(); nc != nil {
				nc.Close()
			}
			s.srv.unregister(o)
			n++
		}
		return true
	})
	return n
}

// clientReply implements CLIENT REPLY ON|OFF|SKIP.
func clientReply(s *session, _ *route, _ *command.Info, c wire.Request) {
	switch {
	case wire.EqualFold(c.Args[2], "on"):
		s.replyMode = replyOn
		s.replyAlways = true
		s.local(wire.AppendStatus(nil, "OK"))
	case wire.EqualFold(c.Args[2], "off"):
		s.replyMode = replyOff
	case wire.EqualFold(c.Args[2], "skip"):
		if s.replyMode != replyOff { // Redis ignores SKIP under OFF
			s.replyMode = replySkipNext
		}
	default:
		s.errorReply("ERR syntax error")
	}
}

// The proxy never evicts its clients, so NO-EVICT is accepted either way.
func clientNoEvict(s *session, _ *route, _ *command.Info, c wire.Request) {
	if !wire.EqualFold(c.Args[2], "on") && !wire.EqualFold(c.Args[2], "off") {
		s.errorReply("ERR syntax error")
		return
	}
	s.local(wire.AppendStatus(nil, "OK"))
}

var clientHelpLines = []string{
	"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are, through the proxy:",
	"ID, INFO, LIST [ID id ...], KILL <ip:port> | KILL <option> <value> [...], GETNAME, SETNAME <name>,",
	"REPLY <ON|OFF|SKIP>, NO-EVICT <ON|OFF>, PAUSE <timeout> [WRITE|ALL], UNPAUSE,",
	"TRACKING <ON|OFF> [REDIRECT <id>] [BCAST] [PREFIX <prefix> ...] [OPTIN] [OPTOUT] [NOLOOP],",
	"CACHING <YES|NO>, GETREDIR, TRACKINGINFO, HELP.",
	"Not available through the proxy: UNBLOCK, NO-TOUCH.",
}

func clientHelp(s *session, _ *route, _ *command.Info, _ wire.Request) {
	s.local(wire.AppendHelp(nil, clientHelpLines))
}

const (
	replyOn = iota
	replyOff
	replySkipNext
	replySkipThis
)
