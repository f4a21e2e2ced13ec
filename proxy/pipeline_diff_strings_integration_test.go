package proxy_test

import "slices"

// The differential pipeline test's string families: strings (LCS among
// them), bitmaps and HyperLogLogs. The rules that keep their answers
// deterministic are in pipeline_diff_families_integration_test.go's comment.

// lcsValue is a short string of few letters, so that LCS finds matches.
func (g *pipeGen) lcsValue() string {
	b := make([]byte, g.rng.Intn(16))
	for i := range b {
		b[i] = "abcde"[g.rng.Intn(5)]
	}
	return string(b)
}

func (g *pipeGen) stringCommand(tagged bool) {
	k := g.key(pdStrings, tagged)
	switch g.rng.Intn(18) {
	case 0:
		g.add("GETRANGE", k, g.num(-5, 3), g.num(-3, 10))
	case 1:
		g.add("SETRANGE", g.pick(slices.Concat(pdStrings, pdLCS)), g.num(0, 20), g.lcsValue())
	case 2:
		// an expiry undone by the next command, or one of its own
		switch g.rng.Intn(3) {
		case 0:
			g.add("GETEX", k, "PERSIST")
		case 1:
			g.add("GETEX", k, g.pick([]string{"EX", "PX"}), "100000")
			g.add("PERSIST", k)
		case 2:
			g.add("GETEX", k, g.pick([]string{"EXAT", "PXAT"}), "4102444800000")
			g.add(g.pick([]string{"EXPIRETIME", "PEXPIRETIME"}), k)
			g.add("PERSIST", k)
		}
	case 3:
		g.add("GETDEL", k)
	case 4:
		g.add("SETNX", k, g.value())
	case 5:
		args := []string{"MSETNX"}
		for range 1 + g.rng.Intn(3) {
			if g.rng.Intn(2) == 0 {
				args = append(args, g.pick(pdLCS), g.lcsValue())
			} else {
				args = append(args, g.pick(pdStrings), g.value())
			}
		}
		g.add(args...)
	case 6:
		if g.rng.Intn(2) == 0 {
			g.add("SET", k, g.pick([]string{"1", "-2.5", "1e2", "0.1", "17.000", "3e-5"}))
		}
		g.add("INCRBYFLOAT", k, g.pick([]string{"1.5", "-0.1", "1e3", "5.0e3", "abc", "0.30000000000000004", "-7"}))
	case 7:
		if g.rng.Intn(2) == 0 {
			g.add("DECR", k)
		} else {
			g.add("DECRBY", k, g.num(-5, 5))
		}
	case 8:
		g.add("GETSET", k, g.value())
	case 9:
		args := []string{"SET", k, g.value()}
		switch g.rng.Intn(4) {
		case 0:
			args = append(args, "EX", "100000")
		case 1:
			args = append(args, "PX", "100000", "GET")
		case 2:
			args = append(args, "KEEPTTL", "XX")
		case 3:
			args = append(args, "NX", "GET")
		}
		g.add(args...)
		g.add("PERSIST", k)
	case 10:
		g.add(g.pick([]string{"SETEX", "PSETEX"}), k, g.pick([]string{"100000", "0", "-5"}), g.value())
		g.add("PERSIST", k)
	case 11, 12, 13:
		args := []string{"LCS", g.pick(pdLCS), g.pick(pdLCS)}
		switch g.rng.Intn(4) {
		case 0:
			args = append(args, "LEN")
		case 1:
			args = append(args, "IDX")
			if g.rng.Intn(2) == 0 {
				args = append(args, "MINMATCHLEN", g.num(0, 3))
			}
			if g.rng.Intn(2) == 0 {
				args = append(args, "WITHMATCHLEN")
			}
		}
		g.add(args...)
	case 14, 15:
		g.add("SET", g.pick(pdLCS), g.lcsValue())
	case 16:
		g.add("SUBSTR", k, g.num(0, 2), g.num(0, 5))
	case 17:
		g.add(g.pick([]string{"GET", "STRLEN"}), g.pick(pdLCS))
	}
}

func (g *pipeGen) bitmapCommand(tagged bool) {
	k := g.key(pdBits, tagged)
	if g.rng.Intn(6) == 0 {
		k = g.pick(pdStrings)
	}
	unit := func(args []string) []string {
		if g.rng.Intn(2) == 0 {
			args = append(args, g.pick([]string{"BYTE", "BIT"}))
		}
		return args
	}
	bfType := func() string { return g.pick([]string{"u8", "i8", "u4", "i5", "u1", "i64", "u63", "u64"}) }
	switch g.rng.Intn(12) {
	case 0, 1, 2:
		g.add("SETBIT", k, g.num(0, 300), g.pick([]string{"0", "1", "1", "2"}))
	case 3:
		g.add("GETBIT", k, g.num(0, 300))
	case 4:
		args := []string{"BITCOUNT", k}
		if g.rng.Intn(3) != 0 {
			args = unit(append(args, g.num(-3, 3), g.num(-2, 40)))
		}
		g.add(args...)
	case 5:
		args := []string{"BITPOS", k, g.pick([]string{"0", "1"})}
		switch g.rng.Intn(3) {
		case 1:
			args = append(args, g.num(-3, 5))
		case 2:
			args = unit(append(args, g.num(-3, 5), g.num(-2, 40)))
		}
		g.add(args...)
	case 6, 7:
		srcs := slices.Concat(pdBits, pdStrings[:2])
		op := g.pick([]string{"AND", "OR", "XOR", "NOT"})
		args := []string{"BITOP", op, g.pick(pdBits), g.pick(srcs)}
		if op != "NOT" || g.rng.Intn(4) == 0 { // NOT takes one source
			args = append(args, g.pick(srcs))
		}
		g.add(args...)
	case 8, 9:
		args := []string{"BITFIELD", k}
		for range 1 + g.rng.Intn(3) {
			switch g.rng.Intn(4) {
			case 0:
				args = append(args, "GET", bfType(), g.pick([]string{"0", "3", "#1", "100"}))
			case 1:
				args = append(args, "SET", bfType(), g.pick([]string{"0", "5", "#2"}), g.num(-300, 300))
			case 2:
				args = append(args, "INCRBY", bfType(), g.pick([]string{"0", "8", "#0"}), g.num(-200, 200))
			case 3:
				args = append(args, "OVERFLOW", g.pick([]string{"WRAP", "SAT", "FAIL"}))
			}
		}
		g.add(args...)
	case 10:
		g.add("BITFIELD_RO", k, "GET", bfType(), g.num(0, 20))
	case 11:
		g.add("GET", g.pick(pdBits))
	}
}

func (g *pipeGen) hllCommand(tagged bool) {
	k := g.key(pdHLLs, tagged)
	elems := func(args []string) []string {
		for range g.rng.Intn(5) {
			args = append(args, g.pick([]string{"a", "b", "c", "d", "1", "2", "\x00"}))
		}
		return args
	}
	switch g.rng.Intn(6) {
	case 0, 1, 2:
		g.add(elems([]string{"PFADD", k})...)
	case 3:
		g.add("PFCOUNT", k)
	case 4:
		g.add(append([]string{"PFCOUNT"}, g.keys(pdHLLs, 3)...)...)
	case 5:
		g.add(append([]string{"PFMERGE", g.pick(pdHLLs)}, g.keys(pdHLLs, 2)...)...)
	}
}
