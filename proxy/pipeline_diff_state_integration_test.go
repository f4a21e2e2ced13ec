package proxy_test

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The differential pipeline test's commands that change the connection's
// state: subscribed mode and pub/sub, HELLO, the commands a client library
// sends, CLIENT REPLY, WATCH and transactions, and commands refused before
// they run. The test is in pipeline_diff_integration_test.go.

// subscription adds a run of commands in subscribed mode, which ends
// unsubscribed (one name an (UN)SUBSCRIBE, or RESET): channels and patterns,
// on the proxy's home shard, and shard channels, on the shard of their
// slot. Subscribed in RESP2, it tries what Redis refuses there; in RESP3,
// where nothing is refused, it runs commands of every kind, and publishes
// to its own channels.
func (g *pipeGen) subscription() {
	g.inSub = true
	defer func() { g.inSub = false }()
	g.subscribe(g.pick([]string{"SUBSCRIBE", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"}))
	for range g.rng.Intn(8) {
		if g.m.resp3 && g.rng.Intn(2) == 0 {
			switch r := g.rng.Intn(10); {
			case r < 2:
				g.pubsubCommand()
			case r < 4:
				g.publishToSelf()
			case r < 9:
				g.step()
			default:
				g.hello("")
			}
			continue
		}
		switch g.rng.Intn(13) {
		case 0:
			g.push(pcmd{args: []string{g.pick([]string{"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"})}, badArity: true})
		case 1, 2:
			g.subscribe(g.pick([]string{"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"}))
		case 3, 4:
			cmd := g.pick([]string{"UNSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"})
			g.add(append([]string{cmd}, g.channels(pubsubKind(strings.ToLower(cmd)))...)...)
		case 5:
			g.add("PING")
		case 6:
			g.add("PING", g.value())
		case 7, 8, 9:
			// refused while subscribed in RESP2; after the last
			// UNSUBSCRIBE, MULTI would start a transaction that the
			// UNSUBSCRIBEs below end in
			switch r := g.rng.Intn(4); {
			case !g.m.subscribed() || g.m.resp3:
				g.add("PING")
			case r == 0:
				g.add("GET", g.pick(pdStrings))
			case r == 1:
				g.clientReply()
			case r == 2:
				g.pubsubCommand()
			default:
				g.add("MULTI")
			}
		case 10:
			g.errorCommand()
		case 11:
			g.hello("")
		case 12:
			g.add("RESET")
		}
	}
	if g.rng.Intn(4) == 0 {
		g.add("RESET")
		return
	}
	// One name an UNSUBSCRIBE: without names the order of its replies is
	// the order of Redis's dictionary; unless one is left.
	for _, u := range []struct {
		cmd string
		set map[string]bool
	}{{"UNSUBSCRIBE", g.m.chans}, {"PUNSUBSCRIBE", g.m.pats}, {"SUNSUBSCRIBE", g.m.schans}} {
		if len(u.set) == 1 && g.rng.Intn(3) == 0 {
			g.add(u.cmd)
		}
		for _, name := range slices.Sorted(maps.Keys(u.set)) {
			g.add(u.cmd, name)
		}
	}
	if g.rng.Intn(4) == 0 {
		g.add(g.pick([]string{"UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"})) // none left: one confirmation
	}
}

// subscribe adds cmd, a (P|S)SUBSCRIBE, with 1 to 3 names of its kind.
func (g *pipeGen) subscribe(cmd string) {
	g.add(append([]string{cmd}, g.channels(pubsubKind(strings.ToLower(cmd)))...)...)
}

// channels returns 1 to 3 names of kind (see pubsubKind), with repeats.
func (g *pipeGen) channels(kind string) []string {
	from := map[string][]string{"channel": pdChannels, "pattern": pdPatterns, "shard": pdShardChannels}[kind]
	return g.keys(from, 3)
}

// pubsubCommand adds PUBLISH, SPUBLISH or PUBSUB. Published to the
// connection's own channels, in RESP3, the messages come back to it.
func (g *pipeGen) pubsubCommand() {
	switch g.rng.Intn(9) {
	case 0, 1, 2:
		g.add("PUBLISH", g.pick(pdChannels), g.value())
	case 3:
		g.add("SPUBLISH", g.pick(pdShardChannels), g.value())
	case 4:
		g.add(append([]string{"PUBSUB", "NUMSUB"}, g.keys(pdChannels, 4)[1:]...)...)
	case 5:
		g.add(append([]string{"PUBSUB", "SHARDNUMSUB"}, g.keys(pdShardChannels, 4)[1:]...)...)
	case 6:
		g.add("PUBSUB", "NUMPAT")
	case 7:
		args := []string{"PUBSUB", "CHANNELS"}
		if g.rng.Intn(2) == 0 {
			args = append(args, g.pick(pdPatterns))
		}
		g.push(pcmd{args: args, unordered: true})
	case 8:
		args := []string{"PUBSUB", "SHARDCHANNELS"}
		if g.rng.Intn(2) == 0 {
			args = append(args, g.pick(pdPatterns))
		}
		g.push(pcmd{args: args, unordered: true})
	}
}

// publishToSelf adds a PUBLISH or SPUBLISH to a channel the connection is
// subscribed to, or one a pattern of its matches, when there is one.
func (g *pipeGen) publishToSelf() {
	var matched []string
	for _, ch := range pdChannels {
		if g.m.messages(ch) > 0 {
			matched = append(matched, ch)
		}
	}
	switch schans := slices.Sorted(maps.Keys(g.m.schans)); {
	case len(schans) > 0 && (len(matched) == 0 || g.rng.Intn(3) == 0):
		g.add("SPUBLISH", g.pick(schans), g.value())
	case len(matched) > 0:
		g.add("PUBLISH", g.pick(matched), g.value())
	default:
		g.pubsubCommand()
	}
}

// hello adds a HELLO that switches to proto ("2" or "3"), now and then
// with AUTH (of the default user, which has no password) and SETNAME; with
// proto "", one of any kind, refused ones too.
func (g *pipeGen) hello(proto string) {
	if proto == "" {
		switch g.rng.Intn(8) {
		case 0:
			g.add("HELLO")
			return
		case 1:
			g.add("HELLO", "4")
			return
		case 2:
			g.add("HELLO", "three")
			return
		case 3:
			g.add("HELLO", "3", "SETNAME") // an option without its value
			return
		}
		proto = g.pick([]string{"2", "3"})
	}
	args := []string{"HELLO", proto}
	if g.rng.Intn(4) == 0 {
		args = append(args, "AUTH", "default", "any password")
	}
	if g.rng.Intn(4) == 0 {
		args = append(args, "SETNAME", "h"+strconv.Itoa(g.rng.Intn(100)))
	}
	g.add(args...)
}

// libraryCommand adds one of the commands a client library sends about the
// connection.
func (g *pipeGen) libraryCommand() {
	switch g.rng.Intn(10) {
	case 0:
		g.add("CLIENT", "SETINFO", g.pick([]string{"LIB-NAME", "LIB-VER"}), "go-redis(,go1.26)") // Redis 7.2's: unknown in 7.0
	case 1:
		g.add("CLIENT", "NO-EVICT", g.pick([]string{"ON", "OFF", "MAYBE"}))
	case 2:
		g.add("CLIENT", "GETREDIR")
	case 3:
		g.add("ACL", "WHOAMI")
	case 4:
		g.add("AUTH", "a password") // none is set: refused
	case 5:
		g.add("AUTH", "default", "any password") // the default user has none: accepted
	case 6:
		g.add("CLIENT", "SETNAME", "n"+strconv.Itoa(g.rng.Intn(100)))
	case 7:
		g.add("CLIENT", "GETNAME")
	case 8, 9:
		g.add("ECHO", "\x00\r\n\xff"+g.value()+"\r")
	}
}

// connectionCommand adds a command about the connection itself.
func (g *pipeGen) connectionCommand() {
	switch g.rng.Intn(6) {
	case 0:
		g.add("RESET")
	case 1:
		g.add("CLIENT", "SETNAME", "n"+strconv.Itoa(g.rng.Intn(100)))
	case 2, 3:
		g.add("CLIENT", "GETNAME")
	case 4, 5:
		// no words: Redis skips it, but it ends a CLIENT REPLY SKIP
		empty := []string{"*0\r\n", "*-1\r\n", "\r\n", "  \n"}
		g.emit(pcmd{empty: empty[g.rng.Intn(len(empty))]})
	}
}

// errorCommand adds a command that Redis refuses before running it, or,
// now and then, one the shard refuses.
func (g *pipeGen) errorCommand() {
	if g.rng.Intn(3) == 0 {
		g.familyError()
		return
	}
	switch r := g.rng.Intn(13); r {
	case 0:
		g.add("NOSUCHCOMMAND", g.value(), "x")
	case 1:
		g.add("NOSUCHCOMMAND", strings.Repeat("long ", 30), "x") // Redis cuts its message at 128 bytes
	case 2:
		g.add(strings.Repeat("N", 140), "x")
	case 3:
		g.add("CLIENT", "NOSUCHSUBCOMMAND")
	case 4:
		g.add("HSET", g.pick(pdHashes), "f", "v", "g") // arity passes, the shard refuses it
	default:
		args := [][]string{{"GET"}, {"SET", g.pick(pdStrings)}, {"LPUSH", g.pick(pdLists)}, {"HGETALL"},
			{"MGET"}, {"EXISTS"}, {"ECHO", "a", "b"}, {"CLIENT"}}[r-5]
		g.push(pcmd{args: slices.Clone(args), badArity: true})
	}
}

func (g *pipeGen) clientReply() {
	switch g.rng.Intn(12) {
	case 0, 1, 2, 3:
		g.add("CLIENT", "REPLY", "OFF")
	case 4, 5, 6:
		g.add("CLIENT", "REPLY", "ON")
	case 7, 8, 9:
		g.add("CLIENT", "REPLY", "SKIP")
	case 10:
		g.add("CLIENT", "REPLY", "MAYBE")
	case 11:
		g.push(pcmd{args: []string{"CLIENT", "REPLY"}, badArity: true})
	}
}

// watchCommand adds WATCH or UNWATCH, or EXEC or DISCARD without MULTI.
func (g *pipeGen) watchCommand() {
	switch g.rng.Intn(5) {
	case 0, 1:
		g.add(append([]string{"WATCH"}, g.keys(slices.Concat(pdStrings, pdLists), 3)...)...)
	case 2:
		g.add("UNWATCH")
	case 3:
		g.add("EXEC")
	case 4:
		g.add("DISCARD")
	}
}

// transaction adds MULTI, commands on tagged keys, and EXEC or DISCARD;
// sometimes an error inside makes EXEC answer EXECABORT, sometimes WATCH
// comes first, and a write of the watched key makes EXEC answer nil.
func (g *pipeGen) transaction() {
	if g.rng.Intn(3) == 0 {
		k := g.pick(pdStrings)
		if g.rng.Intn(2) == 0 {
			k = g.pick(pdAllTagged)
		}
		g.add("WATCH", k)
		switch g.rng.Intn(4) {
		case 0, 1:
			g.add("INCR", k)
		case 2:
			g.familyCommand(true) // may write the watched key, or not
		}
	}
	g.add("MULTI")
	for range g.rng.Intn(7) {
		switch r := g.rng.Intn(22); {
		case r == 21:
			// a shard channel in the transaction's slot, as Redis Cluster
			// wants, and one never subscribed to: a message to the
			// connection would be pushed inside EXEC's reply
			g.add("SPUBLISH", "{t}sc", g.value())
		case r == 20:
			if g.rng.Intn(2) == 0 && !g.small {
				g.add("SET", g.pick(pdStrings), g.bigValue())
			} else {
				g.add("GET", g.pick(pdStrings))
			}
		case r < 12:
			g.keyCommand(true)
		case r < 13:
			g.add("MGET", g.pick(pdStrings), g.pick(pdStrings))
		case r < 14:
			g.add("MSET", g.pick(pdStrings), g.value(), g.pick(pdStrings), g.value())
		case r < 15:
			g.add(append([]string{"EXISTS"}, g.keys(pdStrings, 5)...)...)
		case r < 16:
			g.add("PING")
		case r < 17:
			g.add("ECHO", g.value())
		case r < 18:
			g.errorCommand()
		case r < 19:
			g.add("MULTI") // nested: an error, but not one that aborts
		default:
			g.add("WATCH", g.pick(pdStrings)) // refused inside MULTI, not aborting
		}
	}
	if g.rng.Intn(5) == 0 {
		g.add("DISCARD")
	} else {
		g.add("EXEC")
	}
}
