package proxy

import (
	"bytes"
	"strings"

	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/resp"
)

// Keyspace notifications are the exception to one home (pubsub.go): each
// shard publishes those of its own keys. So a channel of __keyspace@ or
// __keyevent@, or a pattern that can match one (__key*__:*, *), is also
// subscribed on every other shard, over a *mirror* connection per shard
// (mirror). Home still holds every subscription, and only its
// confirmations reach the client, so counts and confirmations are one
// Redis's; a mirror's are swallowed. No message comes twice: a message is
// published on one shard only (PUBLISH on home, a notification on the
// key's shard), and each shard has one connection of the client's for it.
// A mirror is subscribed, and has confirmed, before home is sent the
// command, so the client's confirmation comes after every shard listens;
// an unsubscription leaves the mirrors before home, so none sends a message
// after the client's confirmation.

// mirror sends the part of a classic (un)subscription that concerns
// keyspace notifications to the mirror connection of every shard but home
// (opening them as needed), and waits until each has answered it.
func (p *pubsubLoop) mirror(kind string, names [][]byte) bool {
	unsub := strings.Contains(kind, "unsub")
	args := [][]byte{[]byte(kind)}
	for _, nm := range names {
		if mayCarryKeyspace(kind, nm) {
			args = append(args, nm)
		}
	}
	if len(args) == 1 && (len(names) > 0 || !unsub) {
		return true
	}
	raw := resp.AppendCommand(nil, args...)
	r := p.s.srv.route.Load()
	var sent []*subConn
	for shard := 1; shard < len(r.pools); shard++ {
		key := mirrorKey(shard)
		sc := p.conns[key]
		if sc == nil {
			if unsub {
				continue
			}
			var err error
			if sc, err = p.open(r, key); err != nil {
				// Home still confirms: a reply of the proxy's own would
				// be one the client does not expect. That shard's
				// notifications do not come, as while it is down.
				p.s.srv.log.Warn("pub/sub: keyspace notifications of a shard not subscribed",
					zap.Uint64("client", p.s.id), zap.String("shard", r.pools[shard].Addr), zap.Error(err))
				continue
			}
			p.conns[key] = sc
		}
		if _, err := sc.d.NetConn.Write(raw); err != nil {
			return false
		}
		sent = append(sent, sc)
	}
	syncConns(p.s.srv, sent)
	return true
}

// mayCarryKeyspace reports whether a classic subscription of kind to name
// may receive keyspace notifications: a channel of __keyspace@ or
// __keyevent@, or a pattern that can match one.
func mayCarryKeyspace(kind string, name []byte) bool {
	for _, prefix := range [][]byte{keyspacePrefix, keyeventPrefix} {
		if kind[0] == 'p' { // psubscribe, punsubscribe
			if globMayMatchPrefix(name, prefix) {
				return true
			}
		} else if bytes.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

var (
	keyspacePrefix = []byte("__keyspace@")
	keyeventPrefix = []byte("__keyevent@")
)

// globMayMatchPrefix reports whether a Redis glob pattern can match some
// string that starts with prefix. In doubt (an unterminated class) it says
// yes: a mirror subscription too many costs a connection, one too few
// loses notifications.
func globMayMatchPrefix(pat, prefix []byte) bool {
	for _, c := range prefix {
		if len(pat) == 0 {
			return false
		}
		switch pat[0] {
		case '*':
			return true
		case '?':
			pat = pat[1:]
		case '[':
			rest, ok, closed := globClass(pat[1:], c)
			if !closed {
				return true
			}
			if !ok {
				return false
			}
			pat = rest
		default:
			if pat[0] == '\\' && len(pat) > 1 {
				pat = pat[1:]
			}
			if pat[0] != c {
				return false
			}
			pat = pat[1:]
		}
	}
	return true
}

// globClass matches c against a class whose '[' is gone, as Redis's
// stringmatchlen does ('^' negates, a-z ranges either way round, '\'
// escapes), and returns the pattern after its ']'; closed is false when no
// ']' ends it.
func globClass(pat []byte, c byte) (rest []byte, ok, closed bool) {
	not := len(pat) > 0 && pat[0] == '^'
	if not {
		pat = pat[1:]
	}
	match := false
	for len(pat) > 0 && pat[0] != ']' {
		switch {
		case pat[0] == '\\' && len(pat) >= 2:
			match = match || pat[1] == c
			pat = pat[2:]
		case len(pat) >= 3 && pat[1] == '-' && pat[2] != ']':
			lo, hi := min(pat[0], pat[2]), max(pat[0], pat[2])
			match = match || lo <= c && c <= hi
			pat = pat[3:]
		default:
			match = match || pat[0] == c
			pat = pat[1:]
		}
	}
	if len(pat) == 0 {
		return nil, false, false
	}
	return pat[1:], match != not, true
}
