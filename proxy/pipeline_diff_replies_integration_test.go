package proxy_test

import (
	"crypto/sha256"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// The differential pipeline test's replies: replyModel, which says how many
// replies redis-server sends to each command, and the comparison and
// rendering of the two sides' replies when they differ.

// replyModel follows Redis 7's rules for which commands redis-server
// answers, and with how many replies. A QUIT is answered (as any command,
// under CLIENT REPLY) and ends the connection: what follows is not run.
//
// CLIENT REPLY: OFF silences everything until ON; SKIP silences the next
// command unless OFF holds, and is itself silent; ON clears both and
// answers +OK; RESET clears OFF and a SKIP not yet in force, but a SKIP in
// force silences its +RESET; every command, a refused one and one of no
// words too, ends a SKIP in force.
//
// Pub/sub: (P|S)SUBSCRIBE and (P|S)UNSUBSCRIBE answer one confirmation per
// channel (an UNSUBSCRIBE without channels: one per channel left of its
// kind, or one if none), even under OFF or SKIP. A connection with any
// subscription left, of any kind, is subscribed. Subscribed in RESP2,
// commands other than those, PING, QUIT and RESET are refused (so a CLIENT
// REPLY or a HELLO then changes nothing); in RESP3 none is. A PUBLISH or
// SPUBLISH that reaches the connection's own subscriptions (one message per
// channel and per matching pattern) has the messages pushed before its
// reply, even under OFF or SKIP; inside MULTI they are pushed inside EXEC's
// reply, so they add no reply of their own.
//
// HELLO 2 or 3, well formed, sets the protocol; RESET sets RESP2 again.
type replyModel struct {
	off, skip, skipNext bool
	resp3               bool            // HELLO 3 in force
	multi               bool            // inside MULTI: commands are queued
	chans, pats, schans map[string]bool // subscriptions: channels, patterns, shard channels
	quit                bool            // QUIT ran: nothing after it does
	// for knownDifferences
	watching bool   // a WATCH holds, until EXEC, DISCARD, UNWATCH or RESET
	lastSub  string // the last command was a (un)subscription: "shard" for shard channels, else "classic"
}

// next is the state the round after one that left m starts in: the
// protocol and a WATCH stay with the connection; what else a round changes,
// its end (CLIENT REPLY ON, out of MULTI, unsubscribed) has undone.
func (m replyModel) next() replyModel { return replyModel{resp3: m.resp3, watching: m.watching} }

func (m *replyModel) subscribed() bool { return len(m.chans)+len(m.pats)+len(m.schans) > 0 }

// step takes c and returns the number of replies redis-server sends to it.
func (m *replyModel) step(c pcmd) int {
	if m.chans == nil {
		m.chans, m.pats, m.schans = map[string]bool{}, map[string]bool{}, map[string]bool{}
	}
	if m.quit {
		return 0
	}
	silent, n, pushed := m.off || m.skip, 1, 0
	name := ""
	if len(c.args) > 0 {
		name = strings.ToLower(c.args[0])
	}
	switch kind := pubsubKind(name); {
	case c.empty != "" || kind != "" && !confirms(c.args):
		// refused without waiting for the subscription connections
	case kind == "shard" && !m.multi:
		m.lastSub = "shard"
	case kind != "" && !m.multi:
		m.lastSub = "classic"
	default:
		m.lastSub = ""
	}
	switch {
	case c.empty != "":
		n = 0
	case m.multi && !slices.Contains([]string{"exec", "discard", "multi", "watch", "quit", "reset"}, name):
		// queued, or refused: one reply
	case confirms(c.args):
		n, silent = m.pubsub(name, c.args[1:]), false
	case m.subscribed() && !m.resp3 && name != "ping" && name != "quit" && name != "reset":
		// refused
	case name == "client":
		switch mode, _ := clientReplyMode(c.args); mode {
		case "on":
			m.off, m.skip, silent = false, false, false
		case "off":
			m.off, silent = true, true
		case "skip":
			m.skipNext = !m.off
			silent = true
		}
	case isReset(c.args):
		m.off, m.skipNext, silent = false, false, m.skip
		m.resp3, m.multi, m.watching = false, false, false
		clear(m.chans)
		clear(m.pats)
		clear(m.schans)
	case len(c.args) == 1 && name == "quit":
		m.quit = true
	case len(c.args) == 1 && name == "multi":
		m.multi = true
	case len(c.args) == 1 && (name == "exec" || name == "discard"):
		m.watching = m.watching && !m.multi
		m.multi = false
	case len(c.args) > 1 && name == "watch":
		m.watching = m.watching || !m.multi
	case len(c.args) == 1 && name == "unwatch":
		m.watching = false
	case name == "hello":
		if proto, ok := helloProto(c.args); ok {
			m.resp3 = proto == 3
		}
	case len(c.args) == 3 && name == "publish":
		pushed = m.messages(c.args[1])
	case len(c.args) == 3 && name == "spublish":
		pushed = oneIf(m.schans[c.args[1]])
	}
	m.skip, m.skipNext = m.skipNext, false
	if silent {
		n = 0
	}
	return n + pushed
}

// messages is the number of messages a PUBLISH to ch pushes to the
// connection itself: one for the channel, one per matching pattern. The
// generator's names have no '/', where path.Match and Redis's glob differ.
func (m *replyModel) messages(ch string) int {
	n := oneIf(m.chans[ch])
	for p := range m.pats {
		if ok, _ := path.Match(p, ch); ok {
			n++
		}
	}
	return n
}

// pubsub applies a (P|S)(UN)SUBSCRIBE with well-formed arguments and
// returns the number of confirmations.
func (m *replyModel) pubsub(name string, names []string) int {
	set := map[string]map[string]bool{"channel": m.chans, "pattern": m.pats, "shard": m.schans}[pubsubKind(name)]
	if !strings.Contains(name, "unsub") {
		for _, nm := range names {
			set[nm] = true
		}
		return len(names)
	}
	if len(names) == 0 {
		n := max(1, len(set))
		clear(set)
		return n
	}
	for _, nm := range names {
		delete(set, nm)
	}
	return len(names)
}

// confirms reports whether args is a (P|S)(UN)SUBSCRIBE Redis answers with
// confirmations: any but (P|S)SUBSCRIBE without a name.
func confirms(args []string) bool {
	if len(args) == 0 {
		return false
	}
	name := strings.ToLower(args[0])
	return pubsubKind(name) != "" && (len(args) > 1 || strings.Contains(name, "unsub"))
}

// pubsubKind is "channel", "pattern" or "shard" for (P|S)(UN)SUBSCRIBE,
// else "".
func pubsubKind(name string) string {
	switch name {
	case "subscribe", "unsubscribe":
		return "channel"
	case "psubscribe", "punsubscribe":
		return "pattern"
	case "ssubscribe", "sunsubscribe":
		return "shard"
	}
	return ""
}

// redisReplies returns how many replies redis-server sends to each
// command, sent in the state start, and the state they leave.
func redisReplies(start replyModel, cmds []pcmd) ([]int, replyModel) {
	m := start
	out := make([]int, len(cmds))
	for i, c := range cmds {
		out[i] = m.step(c)
	}
	return out, m
}

func isReset(args []string) bool { return len(args) == 1 && strings.EqualFold(args[0], "reset") }

// helloProto returns the protocol a well-formed HELLO switches to: a
// version of 2 or 3 and options SETNAME name and AUTH user password (of a
// name without spaces, and a user without a password, as the generator's).
func helloProto(args []string) (int, bool) {
	if len(args) < 2 || !strings.EqualFold(args[0], "hello") || args[1] != "2" && args[1] != "3" {
		return 0, false
	}
	for i := 2; i < len(args); {
		switch opt := strings.ToLower(args[i]); {
		case opt == "setname" && i+1 < len(args):
			i += 2
		case opt == "auth" && i+2 < len(args):
			i += 3
		default:
			return 0, false
		}
	}
	return int(args[1][0] - '0'), true
}

// clientReplyMode returns on, off or skip for a well-formed CLIENT REPLY.
func clientReplyMode(args []string) (string, bool) {
	if len(args) != 3 || !strings.EqualFold(args[0], "client") || !strings.EqualFold(args[1], "reply") {
		return "", false
	}
	mode := strings.ToLower(args[2])
	return mode, mode == "on" || mode == "off" || mode == "skip"
}

// compareReplies pairs the replies with the commands that got them (counts
// per command) and describes the first difference, or returns "".
func compareReplies(cmds []pcmd, counts []int, want, got []any) string {
	var b strings.Builder
	j := 0
	for i, c := range cmds {
		// The messages a PUBLISH sends the client itself come before its
		// reply (if not silenced); those for patterns in the order of a
		// dictionary, which differs between servers (its hash is seeded at
		// random).
		var ws, gs []string
		if n := counts[i]; n > 1 && j+n <= len(got) && isPublish(c.args) {
			ws = renderMessages(c, want[j:j+n])
			gs = renderMessages(c, got[j:j+n])
		}
		for k := range counts[i] {
			w := renderFor(c, want[j])
			if j >= len(got) {
				fmt.Fprintf(&b, "command %d %s: redis-server answered %s, the proxy sent no more replies (%d in all, want %d)\n",
					i, showArgs(c.args), clipRendered(w), len(got), len(want))
				return b.String()
			}
			g := renderFor(c, got[j])
			if k < len(ws) {
				w, g = ws[k], gs[k]
			}
			if g != w {
				fmt.Fprintf(&b, "command %d %s: redis-server answered %s, the proxy %s\n",
					i, showArgs(c.args), clipRendered(w), clipRendered(g))
				return b.String()
			}
			j++
		}
	}
	if len(got) > len(want) {
		fmt.Fprintf(&b, "the proxy sent %d replies, redis-server %d; the first extra: %s\n",
			len(got), len(want), clipRendered(digestReply(got[len(want)])))
	}
	return b.String()
}

func isPublish(args []string) bool {
	return len(args) > 0 && (strings.EqualFold(args[0], "publish") || strings.EqualFold(args[0], "spublish"))
}

// renderMessages renders the replies to a PUBLISH, the messages it sent the
// client itself for patterns sorted among themselves.
func renderMessages(c pcmd, msgs []any) []string {
	out := make([]string, len(msgs))
	var pats []int
	for i, m := range msgs {
		out[i] = renderFor(c, m)
		if e := elems(m); len(e) > 0 && string(asBytes(e[0])) == "pmessage" {
			pats = append(pats, i)
		}
	}
	sorted := make([]string, len(pats))
	for i, k := range pats {
		sorted[i] = out[k]
	}
	slices.Sort(sorted)
	for i, k := range pats {
		out[k] = sorted[i]
	}
	return out
}

// renderFor renders a reply to c, sorting it where Redis defines no order,
// and without the client's id in HELLO's.
func renderFor(c pcmd, v any) string {
	if len(c.args) > 0 && strings.EqualFold(c.args[0], "hello") {
		v = maskHelloID(v)
	}
	if arr, ok := v.([]any); ok && c.unordered {
		return renderSorted("[", arr, "] (sorted)")
	}
	return digestReply(v)
}

// maskHelloID returns HELLO's reply (a map, or in RESP2 an array of keys
// and values in turn) with an integer id replaced: it is the connection's
// own, which differs between servers.
func maskHelloID(v any) any {
	kv := slices.Clone(elems(v))
	for i := 0; i+1 < len(kv); i += 2 {
		if _, ok := kv[i+1].(int64); ok && string(asBytes(kv[i])) == "id" {
			kv[i+1] = status("(the client's id)")
		}
	}
	switch v.(type) {
	case respMap:
		return respMap(kv)
	case []any:
		return kv
	}
	return v
}

// renderSorted renders elems in sorted order.
func renderSorted(open string, elems []any, close string) string {
	parts := make([]string, len(elems))
	for i, e := range elems {
		parts[i] = digestReply(e)
	}
	slices.Sort(parts)
	return open + strings.Join(parts, ", ") + close
}

// digestReply is render with a long bulk string shown by its start,
// length and hash: quoting megabytes, under the race detector, would take
// most of the test's time. A set is shown sorted: its order is Redis's
// dictionary's, which differs between servers.
func digestReply(v any) string {
	switch v := v.(type) {
	case []byte:
		if len(v) > 1024 {
			return fmt.Sprintf("%s...(%d bytes, sha256 %x)", strconv.Quote(string(v[:32])), len(v), sha256.Sum256(v))
		}
	case []any:
		if v != nil {
			return renderElems("[", v, "]", digestReply)
		}
	case respMap:
		return renderPairs("%{", v, "}", digestReply)
	case respSet:
		return renderSorted("~[", v, "] (sorted)")
	case respPush:
		return renderElems(">[", v, "]", digestReply)
	}
	return render(v)
}

// clipRendered shortens a rendered reply for a message, naming the whole
// by its length and hash.
func clipRendered(s string) string {
	if len(s) <= 160 {
		return s
	}
	return fmt.Sprintf("%s...(%d bytes, sha256 %x)", s[:120], len(s), sha256.Sum256([]byte(s)))
}

func showArgs(args []string) string {
	parts := make([]string, len(args))
	for i, a := range args {
		if len(a) > 40 {
			a = fmt.Sprintf("%s...(%d bytes)", a[:20], len(a))
		}
		parts[i] = strconv.Quote(a)
	}
	return strings.Join(parts, " ")
}

// listPipeline prints the pipeline, one command a line, marking those
// redis-server does not answer.
func listPipeline(cmds []pcmd, counts []int) string {
	var b strings.Builder
	for i, c := range cmds {
		mark := ""
		switch n := counts[i]; {
		case n == 0:
			mark = "  (no reply)"
		case n > 1:
			mark = fmt.Sprintf("  (%d replies)", n)
		}
		switch {
		case c.empty != "":
			fmt.Fprintf(&b, "  %3d %q, a command of no words%s\n", i, c.empty, mark)
		case c.inline != "":
			fmt.Fprintf(&b, "  %3d %s (inline: %q)%s\n", i, showArgs(c.args), clipRendered(c.inline), mark)
		default:
			fmt.Fprintf(&b, "  %3d %s%s\n", i, showArgs(c.args), mark)
		}
	}
	return b.String()
}

func listReplies(replies []any) string {
	var b strings.Builder
	for i, r := range replies {
		fmt.Fprintf(&b, "  %3d %s\n", i, clipRendered(digestReply(r)))
	}
	return b.String()
}

func howWritten(split int) string {
	if split == 0 {
		return "written at once"
	}
	return fmt.Sprintf("written in two parts, the second from command %d", split)
}

func sumCounts(ns []int) int {
	total := 0
	for _, n := range ns {
		total += n
	}
	return total
}
