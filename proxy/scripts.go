package proxy

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"sync"

	"github.com/reshard/reshard/proxy/command"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// Redis keeps a script's body in the cache of the server that ran its EVAL
// or SCRIPT LOAD, and EVALSHA finds it there only. Behind the proxy the
// keys of a script's next call may live on another shard, or on a shard
// that a reshard added since, whose cache is empty. So the proxy keeps the
// bodies of the scripts it has seen (EVAL, SCRIPT LOAD) and which shards
// have each; an EVALSHA of a known script bound for a shard without it is
// preceded there by SCRIPT LOAD, in the same pipeline, so the client's
// order of commands holds. SCRIPT EXISTS answers 1 for a script the proxy
// knows, since it runs wherever its keys are; SCRIPT FLUSH forgets all.
//
// The bodies are bounded by maxScriptBytes: past it the oldest are
// forgotten, and a forgotten script is as Redis's own cache after a
// restart: EVALSHA may answer NOSCRIPT, clients send EVAL again. A shard
// that restarts at the same address has forgotten its scripts: when a
// connection to a shard is made again, the proxy counts none there.

const maxScriptBytes = 16 << 20

// scriptCache is safe for concurrent use.
type scriptCache struct {
	mu     sync.Mutex
	bodies map[string][]byte              // sha1 hex -> body
	order  []string                       // shas, oldest first, for forgetting
	bytes  int                            // of the bodies
	loaded map[string]map[string]struct{} // shard address -> shas it has
}

// count is the number of scripts the proxy knows.
func (cache *scriptCache) count() int {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	return len(cache.bodies)
}

// scriptSHA is Redis's name for a script body: its SHA1 in lowercase hex.
func scriptSHA(body []byte) string {
	sum := sha1.Sum(body)
	return hex.EncodeToString(sum[:])
}

// seen records that body is loaded on the shards at addrs. It reports
// whether the body is new to the proxy.
func (cache *scriptCache) seen(body []byte, addrs ...string) (added bool) {
	sha := scriptSHA(body)
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if cache.bodies == nil {
		cache.bodies, cache.loaded = map[string][]byte{}, map[string]map[string]struct{}{}
	}
	if _, ok := cache.bodies[sha]; !ok {
		if len(body) > maxScriptBytes {
			return false
		}
		added = true
		cache.bodies[sha] = append([]byte(nil), body...)
		cache.order = append(cache.order, sha)
		cache.bytes += len(body)
		for cache.bytes > maxScriptBytes {
			cache.forgetLocked(cache.order[0])
		}
	}
	for _, a := range addrs {
		set := cache.loaded[a]
		if set == nil {
			set = map[string]struct{}{}
			cache.loaded[a] = set
		}
		set[sha] = struct{}{}
	}
	return added
}

// shardConnected forgets what the shard at addr had: a connection to it
// was made (again), and the shard may be a restarted one, whose cache is
// empty. At worst a script is loaded there once more.
func (cache *scriptCache) shardConnected(addr string) {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	delete(cache.loaded, addr)
}

// forget drops a body Redis refused to cache (it does not compile).
func (cache *scriptCache) forget(body []byte) {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	cache.forgetLocked(scriptSHA(body))
}

func (cache *scriptCache) forgetLocked(sha string) {
	body, ok := cache.bodies[sha]
	if !ok {
		return
	}
	delete(cache.bodies, sha)
	cache.bytes -= len(body)
	for i, o := range cache.order {
		if o == sha {
			cache.order = append(cache.order[:i], cache.order[i+1:]...)
			break
		}
	}
	for _, set := range cache.loaded {
		delete(set, sha)
	}
}

// toLoad returns the body of script sha if the proxy knows it and the shard
// at addr has not got it yet, and counts it as loaded there from now on
// (the caller sends it ahead of the EVALSHA); else nil.
func (cache *scriptCache) toLoad(sha []byte, addr string) []byte {
	sha = lowerHex(sha)
	cache.mu.Lock()
	defer cache.mu.Unlock()
	body, ok := cache.bodies[string(sha)] // string(b) in an index does not allocate
	if !ok {
		return nil
	}
	set := cache.loaded[addr]
	if _, ok := set[string(sha)]; ok {
		return nil
	}
	if set == nil {
		set = map[string]struct{}{}
		cache.loaded[addr] = set
	}
	set[string(sha)] = struct{}{}
	return body
}

// body returns the body of script sha, if the proxy has it.
func (cache *scriptCache) body(sha []byte) ([]byte, bool) {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	b, ok := cache.bodies[string(lowerHex(sha))]
	return b, ok
}

// known reports whether the proxy has the body of script sha.
func (cache *scriptCache) known(sha []byte) bool {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	_, ok := cache.bodies[string(lowerHex(sha))]
	return ok
}

// flush forgets every script, as SCRIPT FLUSH empties the shards' caches.
func (cache *scriptCache) flush() {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	cache.bodies, cache.order, cache.bytes, cache.loaded = nil, nil, 0, nil
}

// lowerHex is a sha as a client may spell it (Redis accepts upper case) in
// the cache's spelling; sha itself when it is spelt so already, as clients
// do (no copy on EVALSHA's path).
func lowerHex(sha []byte) []byte {
	for i, c := range sha {
		if c >= 'A' && c <= 'F' {
			b := append([]byte(nil), sha...)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
			return b
		}
	}
	return sha
}

var scriptLoadWords = [][]byte{[]byte("SCRIPT"), []byte("LOAD")}

// script routes EVAL/FCALL and friends by their keys. A script without keys
// runs on the first shard of the table: a fixed rule, so that scripts which
// keep state in keyless ways (none should) at least see one place. EVAL
// and EVALSHA go through the script cache (above).
func script(s *session, r *route, info *command.Info, c wire.Request) {
	slot, ok, errMsg := s.slotOf(info, c.Args)
	shard := 0
	switch {
	case errMsg != "":
		s.badKeys(info, errMsg, c.Raw)
		return
	case ok:
		shard = r.table.ShardOfSlot(slot)
	}
	switch name := info.Name(); {
	case name == "eval" || name == "eval_ro":
		if s.srv.scripts.seen(c.Args[1], r.pools[shard].Addr) {
			// known from now on, for the EVALSHAs that may follow in this
			// pipeline, unless the shard finds it does not compile
			i := s.stageTo(shard, c.Raw)
			s.calls = append(s.calls, call{first: i, n: 1, merge: forgetUncached, args: c.Args})
			return
		}
	case name == "evalsha" || name == "evalsha_ro":
		if body := s.srv.scripts.toLoad(c.Args[1], r.pools[shard].Addr); body != nil {
			// its reply is nobody's: no call reads the slot
			s.stageTo(shard, resp.AppendCommand(nil, scriptLoadWords[0], scriptLoadWords[1], body))
		}
	}
	s.forward(shard, c.Raw)
}

// forgetUncached passes an EVAL's reply on, and forgets its script if the
// reply says that Redis did not cache it: a body that does not compile, or
// whose shebang line it refuses. (An EVAL refused before it ran, a wrong
// number of keys, OOM, BUSY, leaves a good body that the proxy may keep.)
func forgetUncached(s *session, c *call, out []byte) []byte {
	reply := s.b.Results[c.first]
	if bytes.HasPrefix(reply, []byte("-ERR Error compiling script")) ||
		bytes.HasPrefix(reply, []byte("-ERR ")) && bytes.Contains(reply[:wire.IndexCRLF(reply)+1], []byte(" shebang")) {
		s.srv.scripts.forget(c.args[1])
	}
	return append(out, reply...)
}

// scriptLoad loads a script on every shard and remembers it for shards to
// come (a reshard's).
func scriptLoad(s *session, r *route, _ *command.Info, c wire.Request) {
	addrs := make([]string, len(r.pools))
	for i, p := range r.pools {
		addrs[i] = p.Addr
	}
	m := allOK
	if s.srv.scripts.seen(c.Args[2], addrs...) {
		m = func(s *session, c *call, out []byte) []byte {
			start := len(out)
			if out = allOK(s, c, out); wire.IsError(out[start:]) {
				s.srv.scripts.forget(c.args[2]) // it does not compile
			}
			return out
		}
	}
	s.fanout(r, c.Args, c.Raw, m)
}

// scriptFlush empties the shards' caches and the proxy's.
func scriptFlush(s *session, r *route, _ *command.Info, c wire.Request) {
	s.srv.scripts.flush()
	s.fanout(r, c.Args, c.Raw, allOK)
}

// scriptExists answers 1 for a script every shard has, or one the proxy
// knows and so loads wherever an EVALSHA of it goes.
func scriptExists(s *session, c *call, out []byte) []byte {
	start := len(out)
	out = andArrays(s, c, out)
	elems, ok := wire.ArrayElems(out[start:], nil)
	if !ok {
		return out // an error
	}
	merged := resp.AppendArrayHeader(nil, len(elems))
	for j, e := range elems {
		n, _ := wire.IntReply(e)
		if n == 0 && 2+j < len(c.args) && s.srv.scripts.known(c.args[2+j]) {
			n = 1
		}
		merged = wire.AppendInt(merged, n)
	}
	return append(out[:start], merged...)
}
