package proxy_test

import (
	"crypto/sha1"
	"encoding/hex"
)

// The differential pipeline test's families of commands on keys of any
// type and on scripts: COPY, RENAME and expiry with options, RESTORE, SORT,
// and EVALSHA, FCALL, SCRIPT and FUNCTION. The rules that keep their answers
// deterministic are in pipeline_diff_families_integration_test.go's comment.

// genericCommand adds COPY, RENAME, SORT or an expiry with options.
func (g *pipeGen) genericCommand(tagged bool) {
	// source and destination of one family, or of two (not LCS's, whose
	// values must stay short)
	pair := func() (string, string) {
		fams := [][]string{pdStrings, pdLists, pdHashes, pdZsets, pdSets, pdBits, pdHLLs, pdStreams, pdGeos}
		f := fams[g.rng.Intn(len(fams))]
		src, dst := g.pick(f), g.pick(f)
		if g.rng.Intn(4) == 0 {
			dst = g.pick(fams[g.rng.Intn(len(fams))])
		}
		return src, dst
	}
	opt := func(args []string) []string {
		if g.rng.Intn(3) != 0 {
			args = append(args, g.pick([]string{"NX", "XX", "GT", "LT"}))
		}
		return args
	}
	switch g.rng.Intn(10) {
	case 0, 1:
		src, dst := pair()
		args := []string{"COPY", src, dst}
		if g.rng.Intn(2) == 0 {
			args = append(args, "REPLACE")
		}
		g.add(args...)
	case 2:
		src, dst := pair()
		g.add(g.pick([]string{"RENAME", "RENAMENX"}), src, dst)
	case 3, 4, 5:
		g.sortCommand()
	case 6, 7:
		// expiries of fixed times, read back by EXPIRETIME, and removed
		k := g.key(pdAllTagged, tagged)
		g.add(opt([]string{"EXPIREAT", k, g.pick([]string{"4102444800", "4102444900"})})...)
		g.add(opt([]string{g.pick([]string{"EXPIREAT", "PEXPIREAT"}), k, g.pick([]string{"4102444850", "4102444850000"})})...)
		g.add(g.pick([]string{"EXPIRETIME", "PEXPIRETIME"}), k)
		g.add("PERSIST", k)
	case 8:
		k := g.key(pdAllTagged, tagged)
		g.add(opt([]string{g.pick([]string{"EXPIRE", "PEXPIRE"}), k, "100000"})...)
		g.add("PERSIST", k)
	case 9:
		switch g.rng.Intn(4) {
		case 0:
			g.add(g.pick([]string{"TYPE", "EXISTS"}), g.key(pdAllTagged, tagged))
		case 1:
			// an error: no LFU policy (the frequency would differ)
			g.add("OBJECT", "FREQ", g.key(pdAllTagged, tagged))
		case 2, 3:
			g.restoreCommand(tagged)
		}
	}
}

// pdDumps are DUMP's payloads of Redis 7.0 (RDB 10): the string "hello",
// the list a b c, the sorted set m0 1 m1 2, and one with a wrong checksum.
var pdDumps = []struct{ payload, kind string }{
	{"\x00\x05hello\n\x00cr\xdfve4 \n", "string"},
	{"\x12\x01\x02\x10\x10\x00\x00\x00\x03\x00\x81a\x02\x81b\x02\x81c\x02\xff\n\x00\xc8\x18\xb9\x0c\x953R\x9e", "list"},
	{"\x11\x13\x13\x00\x00\x00\x04\x00\x82m0\x03\x01\x01\x82m1\x03\x02\x01\xff\n\x00\xe3\x96m\xedr\xba\x83w", "zset"},
	{"\x00\x05hello\n\x00cr\xdfve4 \x00", "string"},
}

// restoreCommand adds RESTORE of a payload of pdDumps, into a key of its
// type (or, now and then, any), with no expiry or one PERSIST removes.
func (g *pipeGen) restoreCommand(tagged bool) {
	d := pdDumps[g.rng.Intn(len(pdDumps))]
	kind := map[string][]string{"string": pdStrings, "list": pdLists, "zset": pdZsets}[d.kind]
	k := g.key(kind, tagged)
	ttl := g.pick([]string{"0", "0", "100000", "4102444800000"})
	args := []string{"RESTORE", k, ttl, d.payload}
	if g.rng.Intn(2) == 0 {
		args = append(args, "REPLACE")
	}
	if ttl == "4102444800000" {
		args = append(args, "ABSTTL")
	}
	if g.rng.Intn(4) == 0 {
		args = append(args, g.pick([]string{"IDLETIME", "FREQ"}), g.num(0, 100))
	}
	g.add(args...)
	if ttl != "0" {
		g.add("PERSIST", k)
	}
}

// sortCommand adds SORT or SORT_RO of a list, a sorted set or a set. BY and
// GET read the tagged strings and hashes: {t}s1 for the element 1, {t}h0's
// fields for 0. A set is read in its dictionary's order, which differs
// between servers, and any key may hold one (a key of another type's
// name, made by SADD or COPY), so the order must never show: BY a pattern
// only without ALPHA (equal weights are then ordered by the elements
// themselves; under ALPHA they keep the input's order), and BY nosort only
// with STORE (which sorts a set anyway).
func (g *pipeGen) sortCommand() {
	fams := [][]string{pdLists, pdLists, pdZsets, pdSets}
	args := []string{"SORT", g.pick(fams[g.rng.Intn(len(fams))])}
	by := ""
	switch g.rng.Intn(6) {
	case 0, 1, 2:
		by = g.pick([]string{"{t}s*", "{t}h*->f1", "{t}nokey*"})
	case 3:
		by = "nosort"
	}
	if by != "" {
		args = append(args, "BY", by)
	}
	if g.rng.Intn(3) == 0 {
		args = append(args, "LIMIT", g.num(0, 2), g.num(-1, 4))
	}
	for range g.rng.Intn(3) {
		args = append(args, "GET", g.pick([]string{"#", "{t}s*", "{t}h*->f2", "{t}nokey*"}))
	}
	if g.rng.Intn(3) == 0 {
		args = append(args, g.pick([]string{"ASC", "DESC"}))
	}
	if by == "" && g.rng.Intn(2) == 0 {
		args = append(args, "ALPHA")
	}
	switch r := g.rng.Intn(4); {
	case r == 0 || by == "nosort":
		args = append(args, "STORE", g.pick(pdLists))
	case r == 1:
		args[0] = "SORT_RO"
	}
	g.add(args...)
}

var (
	// pdLoadScripts are loaded with SCRIPT LOAD and run by their SHA1.
	pdLoadScripts = []string{"return 7", "return redis.call('get', KEYS[1])", "return redis.call('incr', KEYS[1])"}
	// pdLibraries are versions of one library, dlib, each of one function
	// (FUNCTION LIST and DUMP show a library's functions, and the
	// libraries, in a dictionary's order), and one refused.
	pdLibraries = []string{
		"#!lua name=dlib\nredis.register_function{function_name='dget', callback=function(keys, args) return redis.call('get', keys[1]) end, flags={'no-writes'}}",
		"#!lua name=dlib\nredis.register_function('dincr', function(keys, args) return redis.call('incr', keys[1]) end)",
		"#!lua name=dlib\nredis.register_function('dget', function(keys, args) return redis.call('get', keys[1]) end)",
		"#!lua name=dlib\nreturn 1", // registers no function
	}
	// pdFunctionDump is FUNCTION DUMP of Redis 7.0 with pdLibraries[0]
	// loaded.
	pdFunctionDump = "\xf5\xc3@\x84@\x97\x1f#!lua name=dlib\x0aredis.register_f\x07unction{\xc0\x08\x00_`*\x10'dget', callback=\xc0\x1e\x12(keys, args) return \x06@R@*\x01('\x806@$\x1d[1]) end, flags={'no-writes'}}\x0a\x00\x9bo >\x7f\xfe\x06\x12"
)

// scriptCommand adds EVALSHA or FCALL of a script or function loaded
// before (or not: NOSCRIPT), or, outside transactions (the proxy refuses
// keyless commands there), SCRIPT and FUNCTION, which the proxy sends to
// every shard.
func (g *pipeGen) scriptCommand(tagged bool) {
	k := g.key(pdStrings, tagged)
	r := g.rng.Intn(12)
	if tagged {
		r %= 4
	}
	switch r {
	case 0, 1:
		sum := sha1.Sum([]byte(g.pick(pdLoadScripts)))
		g.add(g.pick([]string{"EVALSHA", "EVALSHA", "EVALSHA_RO"}), hex.EncodeToString(sum[:]), "1", k)
	case 2, 3:
		g.add(g.pick([]string{"FCALL", "FCALL", "FCALL_RO"}), g.pick([]string{"dget", "dincr"}), "1", k)
	case 4, 5:
		g.add("SCRIPT", "LOAD", g.pick(pdLoadScripts))
	case 6:
		args := []string{"SCRIPT", "EXISTS"}
		for _, sc := range pdLoadScripts[:1+g.rng.Intn(len(pdLoadScripts))] {
			sum := sha1.Sum([]byte(sc))
			args = append(args, hex.EncodeToString(sum[:]))
		}
		g.add(args...)
	case 7:
		if g.rng.Intn(3) == 0 {
			g.add("SCRIPT", "FLUSH", g.pick([]string{"SYNC", "ASYNC"}))
		} else {
			g.add("FUNCTION", "FLUSH")
		}
	case 8, 9:
		args := []string{"FUNCTION", "LOAD"}
		if g.rng.Intn(2) == 0 {
			args = append(args, "REPLACE")
		}
		g.add(append(args, g.pick(pdLibraries))...)
	case 10:
		switch g.rng.Intn(4) {
		case 0:
			g.add("FUNCTION", "DELETE", g.pick([]string{"dlib", "nolib"}))
		case 1:
			args := []string{"FUNCTION", "LIST"}
			if g.rng.Intn(2) == 0 {
				args = append(args, "LIBRARYNAME", g.pick([]string{"d*", "nolib"}))
			}
			if g.rng.Intn(2) == 0 {
				args = append(args, "WITHCODE")
			}
			g.add(args...)
		default:
			g.add("FUNCTION", "DUMP")
		}
	case 11:
		args := []string{"FUNCTION", "RESTORE", pdFunctionDump}
		if g.rng.Intn(2) == 0 {
			args = append(args, g.pick([]string{"APPEND", "REPLACE", "FLUSH"}))
		}
		g.add(args...)
	}
}
