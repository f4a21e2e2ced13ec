package proxy_test

import (
	"fmt"
	"math/rand"
	"slices"
	"strconv"
	"strings"
)

// The differential pipeline test's generator: pipeGen, its keys, channels
// and scripts, how a round's pipeline is put together (step), and the basic
// commands on keys; the command families are in
// pipeline_diff_families_integration_test.go, the commands that change the
// connection's state in pipeline_diff_state_integration_test.go.

// pipeGen generates pipelines. Every pipeline ends outside MULTI and
// unsubscribed, so the test can append CLIENT REPLY ON and its marker.
type pipeGen struct {
	rng   *rand.Rand
	round int
	cmds  []pcmd
	m     replyModel // the state the commands so far leave: protocol, subscriptions, MULTI
	quit  bool       // the last pipeline ends with QUIT (and what QUIT leaves unrun)
	small bool       // no large values: the pipeline must fit in one read
	inSub bool       // in a run of subscribed mode: no other one starts
	xseq  int        // the last stream id given out (xid)
	xids  []string   // the last few stream ids given out
	lower bool       // push writes the arguments in lower case: keywords, and values alike
}

var (
	// tagged keys share a slot, so any multi-key command may take them;
	// each kind is used mostly by its type's commands, sometimes by
	// another's (WRONGTYPE).
	pdStrings = []string{"{t}s0", "{t}s1", "{t}s2", "{t}s3", "a{t}s4", "{t}{x}s5"} // the first {...} is the tag
	pdLists   = []string{"{t}l0", "{t}l1"}
	pdHashes  = []string{"{t}h0", "{t}h1"}
	// untagged keys land on every shard: single-key commands and the split
	// ones (MGET, MSET, DEL, EXISTS, UNLINK, TOUCH) only.
	pdLoose = func() []string {
		var out []string
		for i := range 24 {
			out = append(out, "u:"+strconv.Itoa(i))
		}
		return out
	}()
	pdZsets        = []string{"{t}z0", "{t}z1"}
	pdSets         = []string{"{t}e0", "{t}e1"}
	pdKeysPatterns = []string{"*", "u:*", "{t}*", "u:1?", "*s*", "nothing*", "{t}[sl]0"}

	// Channels, patterns (each matches some of the channels) and shard
	// channels, which share a slot; {sc}a is a name of both kinds, which
	// Redis keeps apart.
	pdChannels      = []string{"ch0", "ch1", "ch2", "ch3", "{sc}a"}
	pdPatterns      = []string{"ch*", "ch[12]", "ch?", "{sc}*", "nomatch*"}
	pdShardChannels = []string{"{sc}a", "{sc}b", "{sc}c"}

	// pdScripts return each of RESP3's types (RESP2 gets them converted),
	// from Lua or from a command the script runs in RESP3; each takes a key
	// of the transactions' slot and the argument it is listed with.
	pdScripts = []struct {
		script, arg string
		keys        []string
	}{
		{"return {double=tonumber(ARGV[1])}", "-0.25", pdStrings},
		{"return {double=tonumber(ARGV[1])}", "1e300", pdStrings},
		{"return {big_number=ARGV[1]}", "-123456789012345678901234567890", pdStrings},
		{"return {verbatim_string={format='txt', string=ARGV[1]}}", "some text\r\nand \x00", pdStrings},
		{"return {map={[ARGV[1]]={1, {double=2.5}}}}", "k", pdStrings},
		{"return {set={[ARGV[1]]=true}}", "member", pdStrings},
		{"return {true, false, ARGV[1]}", "x", pdStrings},
		{"return {err=ARGV[1]}", "MYERR raised by the script", pdStrings},
		{"redis.setresp(3); return redis.call('HGETALL', KEYS[1])", "", pdHashes},
		{"redis.setresp(3); return redis.call('ZSCORE', KEYS[1], ARGV[1])", "m1", pdZsets},
		{"redis.setresp(3); return {redis.call('GET', KEYS[1]), redis.call('EXISTS', KEYS[1])}", "", pdStrings},
	}
)

// pipeline returns the commands of a round, sent in the state start.
func (g *pipeGen) pipeline(round int, start replyModel) []pcmd {
	g.round = round
	g.cmds = nil
	g.m = start
	g.quit = g.rng.Intn(25) == 0
	if g.quit {
		return g.quitPipeline()
	}
	if g.rng.Intn(4) == 0 { // to the other protocol
		if g.m.resp3 {
			g.hello("2")
		} else {
			g.hello("3")
		}
	}
	n := 1 + g.rng.Intn(25)
	if g.rng.Intn(10) == 0 {
		n = 100 + g.rng.Intn(200) // long enough to arrive in several reads
	}
	if g.rng.Intn(6) == 0 {
		g.bigReplies()
	}
	if g.rng.Intn(40) == 0 {
		g.manyCommands()
	}
	for len(g.cmds) < n {
		g.step()
	}
	return g.cmds
}

// quitPipeline is a short pipeline that ends with QUIT, sometimes inside
// MULTI, and a few commands after it, which must not run. It is small, so
// that both sides read all of it before they close the connection (with
// unread bytes the close would be a reset, and replies could be lost).
func (g *pipeGen) quitPipeline() []pcmd {
	g.small = true
	defer func() { g.small = false }()
	for n := g.rng.Intn(8); len(g.cmds) < n; {
		g.step()
	}
	// Under CLIENT REPLY OFF, redis-server 7.0 takes QUIT but keeps the
	// connection open, and runs nothing more on it: no end to wait for.
	g.add("CLIENT", "REPLY", "ON")
	if g.rng.Intn(3) == 0 {
		g.add("MULTI")
		g.keyCommand(true)
	}
	g.add("QUIT")
	for range g.rng.Intn(4) {
		g.add("SET", g.pick(pdStrings), "after QUIT")
	}
	return g.cmds
}

func (g *pipeGen) add(args ...string) { g.push(pcmd{args: args}) }

// emit adds c as it is, and follows the state it leaves.
func (g *pipeGen) emit(c pcmd) {
	g.m.step(c)
	g.cmds = append(g.cmds, c)
}

// push adds c, its name now and then in another case, now and then as an
// inline command.
func (g *pipeGen) push(c pcmd) {
	switch g.rng.Intn(16) {
	case 0, 1:
		c.args[0] = strings.ToLower(c.args[0])
	case 2:
		b := []byte(c.args[0])
		for i := range b {
			if l := b[i] | 0x20; l >= 'a' && l <= 'z' && g.rng.Intn(2) == 0 {
				b[i] ^= 0x20
			}
		}
		c.args[0] = string(b)
	}
	if g.lower {
		for i := 1; i < len(c.args); i++ {
			c.args[i] = strings.ToLower(c.args[i])
		}
	}
	size := 0
	for _, a := range c.args {
		size += len(a)
	}
	if size < 1000 && g.rng.Intn(10) == 0 {
		c.inline = g.inlineLine(c.args)
	}
	g.emit(c)
}

func (g *pipeGen) pick(keys []string) string { return keys[g.rng.Intn(len(keys))] }

// key picks a key for a command of kind, now and then one of another kind;
// tagged only keeps it in the transaction's slot.
func (g *pipeGen) key(kind []string, tagged bool) string {
	switch r := g.rng.Intn(10); {
	case r == 0:
		return g.pick(slices.Concat(pdStrings, pdLists, pdHashes))
	case r <= 3 && !tagged:
		return g.pick(pdLoose)
	}
	return g.pick(kind)
}

func (g *pipeGen) value() string {
	switch g.rng.Intn(8) {
	case 3:
		b := make([]byte, g.rng.Intn(12))
		for i := range b {
			b[i] = byte(g.rng.Intn(256))
		}
		return string(b)
	case 4:
		return `q'uo"te\ta\b`
	case 0:
		return strconv.Itoa(g.rng.Intn(200) - 100)
	case 1:
		return ""
	case 2:
		return "v" + strconv.Itoa(g.rng.Intn(1000)) + " with spaces\r\nand a CRLF"
	}
	return "v" + strconv.Itoa(g.rng.Intn(1000))
}

func (g *pipeGen) bigValue() string {
	n := pipeDiffBig + g.rng.Intn(16<<10)
	return fmt.Sprintf("big-%d-", g.round) + strings.Repeat(string(rune('a'+g.rng.Intn(26))), n)
}

// bigReplies makes the pipeline's replies pass 1 MB early, so that what
// follows runs after the session dropped its buffers.
func (g *pipeGen) bigReplies() {
	k := g.pick(slices.Concat(pdStrings, pdLoose[:4]))
	switch g.rng.Intn(3) {
	case 0:
		g.add("SET", k, g.bigValue())
	case 1:
		g.add("SETRANGE", k, strconv.Itoa(pipeDiffBig+g.rng.Intn(1000)), "tail")
	case 2:
		g.add("ECHO", g.bigValue())
	}
	g.add("GET", k)
	g.add("GET", k)
	if g.rng.Intn(4) != 0 {
		// a step the proxy runs on every shard, after the session dropped
		// its reply buffers (4424a06)
		switch g.rng.Intn(3) {
		case 0:
			g.push(pcmd{args: []string{"KEYS", g.pick(pdKeysPatterns)}, unordered: true})
		case 1:
			g.add("WAIT", "0", "0")
		case 2:
			g.add("FLUSHDB")
		}
	}
}

// manyCommands adds more commands than the session keeps reply buffers
// for (4096), sometimes inside one transaction.
func (g *pipeGen) manyCommands() {
	k, n := "{t}n", 4097+g.rng.Intn(2000) // a key of its own, never a large value
	g.add("SET", k, strconv.Itoa(g.rng.Intn(100)))
	tx := g.rng.Intn(2) == 0
	if tx {
		g.add("MULTI")
	}
	for i := range n {
		switch i % 3 {
		case 0:
			g.add("INCR", k)
		case 1:
			g.add("GET", k)
		case 2:
			g.add("PING")
		}
	}
	if tx {
		g.add("EXEC")
	}
}

// step adds one command, or a short run of them (a transaction).
func (g *pipeGen) step() {
	r := g.rng.Intn(108)
	switch {
	case r < 30:
		g.keyCommand(false)
	case r < 40:
		g.splitCommand()
	case r < 48:
		g.transaction()
	case r < 55:
		g.clientReply()
	case r < 60:
		g.add("PING")
	case r < 63:
		g.add("PING", g.value())
	case r < 67:
		if g.rng.Intn(8) == 0 && !g.small {
			g.add("ECHO", g.bigValue())
		} else {
			g.add("ECHO", g.value())
		}
	case r < 71:
		g.errorCommand()
	case r < 74:
		g.add("DBSIZE")
	case r < 77:
		g.push(pcmd{args: []string{"KEYS", g.pick(pdKeysPatterns)}, unordered: true})
	case r < 80:
		if g.rng.Intn(10) == 0 {
			g.add("WAIT", "1", "5") // no replica: 0 after 5 ms
		} else {
			g.add("WAIT", "0", "0")
		}
	case r < 81:
		args := []string{g.pick([]string{"FLUSHDB", "FLUSHALL"})}
		if g.rng.Intn(2) == 0 {
			args = append(args, g.pick([]string{"ASYNC", "SYNC"}))
		}
		g.add(args...)
	case r < 84:
		g.watchCommand()
	case r < 85:
		if g.rng.Intn(3) == 0 && !g.inSub {
			g.subscription()
		} else {
			g.connectionCommand()
		}
	case r < 92 && len(g.cmds) < 30 && !g.small: // a long pipeline is long for its count, not its size
		g.bigCommand()
	case r < 100:
		g.keyCommand(false)
	case r < 102:
		g.hello("")
	case r < 104:
		g.pubsubCommand()
	case r < 106:
		g.libraryCommand()
	case r < 107 && !g.inSub:
		g.subscription()
	default:
		g.keyCommand(false)
	}
}

// keyCommand adds a command on one key, or on tagged keys only.
func (g *pipeGen) keyCommand(tagged bool) {
	if g.rng.Intn(2) == 0 {
		g.familyCommand(tagged)
		return
	}
	switch g.rng.Intn(27) {
	case 0, 1:
		g.add("SET", g.key(pdStrings, tagged), g.value())
	case 2:
		g.add("SET", g.key(pdStrings, tagged), g.value(), "GET")
	case 3:
		g.add("SET", g.key(pdStrings, tagged), g.value(), "NX")
	case 4, 5:
		g.add("GET", g.key(pdStrings, tagged))
	case 6:
		g.add("INCR", g.key(pdStrings, tagged))
	case 7:
		g.add("INCRBY", g.key(pdStrings, tagged), strconv.Itoa(g.rng.Intn(100)-50))
	case 8:
		g.add("APPEND", g.key(pdStrings, tagged), g.value())
	case 9:
		g.add("STRLEN", g.key(pdStrings, tagged))
	case 10:
		g.add("DEL", g.key(pdStrings, tagged))
	case 11, 12:
		args := []string{"LPUSH", g.key(pdLists, tagged)}
		for range 1 + g.rng.Intn(4) {
			args = append(args, g.value())
		}
		g.add(args...)
	case 13:
		g.add("RPUSH", g.key(pdLists, tagged), g.value())
	case 14, 15:
		g.add("LRANGE", g.key(pdLists, tagged), "0", strconv.Itoa(g.rng.Intn(12)-1))
	case 16:
		g.add("LLEN", g.key(pdLists, tagged))
	case 17, 18:
		args := []string{"HSET", g.key(pdHashes, tagged)}
		for range 1 + g.rng.Intn(3) {
			args = append(args, "f"+strconv.Itoa(g.rng.Intn(8)), g.value())
		}
		g.add(args...)
	case 19:
		g.add("HGETALL", g.key(pdHashes, tagged))
	case 20:
		g.add("HGET", g.key(pdHashes, tagged), "f"+strconv.Itoa(g.rng.Intn(8)))
	case 21:
		// a multi-key command that is not split: one slot
		src, dst := g.pick(pdLists), g.pick(pdLists)
		g.add("LMOVE", src, dst, "LEFT", "RIGHT")
	case 22:
		// blocking, for 10 ms at most when the list is empty (inside
		// MULTI it does not block)
		switch g.rng.Intn(3) {
		case 0:
			g.add("BLPOP", g.key(pdLists, tagged), "0.01")
		case 1:
			g.add("BRPOP", g.pick(pdLists), g.pick(pdLists), "0.01")
		case 2:
			g.add("BLMOVE", g.pick(pdLists), g.pick(pdLists), "RIGHT", "LEFT", "0.01")
		}
	case 23:
		g.zsetCommand(tagged)
	case 24:
		g.setCommand(tagged)
	case 25:
		g.keyspaceCommand(tagged)
	case 26:
		sc := pdScripts[g.rng.Intn(len(pdScripts))]
		g.add("EVAL", sc.script, "1", g.pick(sc.keys), sc.arg)
	}
}

// zsetCommand adds a sorted-set command: scores are RESP3's doubles.
func (g *pipeGen) zsetCommand(tagged bool) {
	k := g.key(pdZsets, tagged)
	member := func() string { return "m" + strconv.Itoa(g.rng.Intn(4)) }
	score := func() string {
		return g.pick([]string{"1", "1.5", "-2", "0.1", "1e3", "inf", "-inf", "3.0000000000000004"})
	}
	switch g.rng.Intn(6) {
	case 0, 1:
		g.add("ZADD", k, score(), member(), score(), member())
	case 2:
		g.add("ZINCRBY", k, score(), member())
	case 3:
		g.add("ZSCORE", k, member())
	case 4:
		g.add("ZMSCORE", k, member(), member())
	case 5:
		g.add("ZRANGE", k, "0", "-1", "WITHSCORES")
	}
}

// setCommand adds a set command: RESP3's sets, whose order Redis does not
// define.
func (g *pipeGen) setCommand(tagged bool) {
	k := g.key(pdSets, tagged)
	member := func() string { return g.pick([]string{"a", "b", "1", "2", "m1", "\x00\xff"}) }
	switch r := g.rng.Intn(6); {
	case r == 2 || r == 4:
		if tagged {
			// inside MULTI, where the set would come in EXEC's reply,
			// which is compared in order
			g.add("SCARD", k)
		} else if r == 2 {
			g.push(pcmd{args: []string{"SMEMBERS", k}, unordered: true})
		} else {
			g.push(pcmd{args: []string{g.pick([]string{"SINTER", "SUNION"}), pdSets[0], pdSets[1]}, unordered: true})
		}
	case r == 3:
		g.add("SMISMEMBER", k, member(), member())
	case r == 5:
		g.add("SREM", k, member())
	default:
		g.add("SADD", k, member(), member(), member())
	}
}

// keyspaceCommand adds TYPE, OBJECT or a command about expiry. A key never
// keeps an expiry past the command after the one that set it (PERSIST), so
// TTL is always -1 or -2, never a time.
func (g *pipeGen) keyspaceCommand(tagged bool) {
	k := g.key(pdAllTagged, tagged)
	switch g.rng.Intn(9) {
	case 0, 1:
		g.add("TYPE", k)
	case 2:
		g.add("OBJECT", "ENCODING", k)
	case 3:
		g.add("OBJECT", "REFCOUNT", k)
	case 4:
		g.add(g.pick([]string{"TTL", "PTTL", "EXPIRETIME"}), k)
	case 5:
		args := []string{g.pick([]string{"EXPIRE", "PEXPIRE"}), k, "100000000"}
		if g.rng.Intn(2) == 0 {
			args = append(args, g.pick([]string{"NX", "XX", "GT", "LT"}))
		}
		g.add(args...)
		g.add("PERSIST", k)
	case 6:
		// a time of its own, which reads back the same on any server
		g.add(g.pick([]string{"EXPIREAT", "PEXPIREAT"}), k, "4102444800000")
		g.add(g.pick([]string{"EXPIRETIME", "PEXPIRETIME"}), k)
		g.add("PERSIST", k)
	case 7:
		g.add(g.pick([]string{"EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"}), k, g.pick([]string{"0", "-1"})) // gone at once
	case 8:
		g.add(g.pick([]string{"PERSIST", "GETEX"}), k) // GETEX without options sets no expiry
	}
}

// keys returns 1 to max keys, with repeats, from keys.
func (g *pipeGen) keys(from []string, max int) []string {
	out := make([]string, 1+g.rng.Intn(max))
	for i := range out {
		out[i] = g.pick(from)
	}
	return out
}

// splitCommand adds a multi-key command the proxy splits over its shards.
func (g *pipeGen) splitCommand() {
	all := slices.Concat(pdLoose, pdStrings, pdLists, pdHashes)
	if g.rng.Intn(3) == 0 {
		all = slices.Concat(pdLoose, pdAllTagged)
	}
	switch g.rng.Intn(7) {
	case 0, 1:
		g.add(append([]string{"MGET"}, g.keys(all, 12)...)...)
	case 2:
		args := []string{"MSET"}
		for _, k := range g.keys(slices.Concat(pdLoose, pdStrings), 8) {
			args = append(args, k, g.value())
		}
		if g.rng.Intn(10) == 0 {
			args = args[:len(args)-1] // a key without its value
		}
		g.push(pcmd{args: args, badArity: len(args) == 2})
	case 3:
		g.add(append([]string{"DEL"}, g.keys(all, 6)...)...)
	case 4:
		g.add(append([]string{"EXISTS"}, g.keys(all, 60)...)...)
	case 5:
		g.add(append([]string{"UNLINK"}, g.keys(all, 4)...)...)
	case 6:
		g.add(append([]string{"TOUCH"}, g.keys(all, 8)...)...)
	}
}

// bigCommand adds a command with a large value or a large reply.
func (g *pipeGen) bigCommand() {
	k := g.pick(slices.Concat(pdStrings, pdLoose[:4]))
	switch g.rng.Intn(5) {
	case 0:
		g.add("SET", k, g.bigValue())
	case 1:
		g.add("APPEND", k, strings.Repeat("+", 64<<10))
	case 2:
		g.add("GET", k)
	case 3:
		g.add("MGET", k, g.pick(pdLoose), g.pick(pdLoose), k)
	case 4:
		g.add("LPUSH", g.pick(pdLists), g.bigValue())
	}
}
