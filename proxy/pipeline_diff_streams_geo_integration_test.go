package proxy_test

import "strconv"

// The differential pipeline test's stream and geo families, with the stream
// ids the generator gives out. The rules that keep their answers
// deterministic are in pipeline_diff_families_integration_test.go's comment.

// xid returns a stream id above any the generator gave before, so that
// XADD with it succeeds.
func (g *pipeGen) xid() string {
	g.xseq += 1 + g.rng.Intn(2)
	id := strconv.Itoa(g.xseq/3+1) + "-" + strconv.Itoa(g.xseq%3)
	g.xids = append(g.xids, id)
	if len(g.xids) > 8 {
		g.xids = g.xids[1:]
	}
	return id
}

// oldXid returns an id the generator gave lately, or one below all of them.
func (g *pipeGen) oldXid() string {
	if len(g.xids) == 0 || g.rng.Intn(6) == 0 {
		return g.pick([]string{"0-1", "1-0", "1"})
	}
	return g.pick(g.xids)
}

func (g *pipeGen) streamCommand(tagged bool) {
	k := g.key(pdStreams, tagged)
	group := func() string { return g.pick([]string{"g1", "g1", "g2"}) }
	consumer := func() string { return g.pick([]string{"c1", "c2"}) }
	r := g.rng.Intn(22)
	if r >= 12 && r < 20 && g.rng.Intn(3) == 0 {
		// a group to read in, often there already (-BUSYGROUP)
		g.add("XGROUP", "CREATE", k, group(), g.pick([]string{"0", "$"}), "MKSTREAM")
	}
	switch r {
	case 0, 1, 2, 3:
		args := []string{"XADD", k}
		if g.rng.Intn(8) == 0 {
			args = append(args, "NOMKSTREAM")
		}
		switch g.rng.Intn(8) {
		case 0:
			args = append(args, "MAXLEN", "=", g.num(0, 5))
		case 1:
			args = append(args, "MINID", "=", g.oldXid())
		}
		switch r := g.rng.Intn(10); {
		case r == 0:
			args = append(args, g.oldXid()) // mostly an error: not above the last
		case r == 1:
			g.xseq += 3
			args = append(args, strconv.Itoa(g.xseq/3+1)+"-*") // a time of its own, the next sequence
		default:
			args = append(args, g.xid())
		}
		args = append(args, g.field(), g.value())
		if g.rng.Intn(3) == 0 {
			args = append(args, g.field(), g.value())
		}
		g.add(args...)
	case 4:
		g.add("XLEN", k)
	case 5, 6:
		args := []string{"XRANGE", k, g.pick([]string{"-", g.oldXid(), "(" + g.oldXid()}), "+"}
		if g.rng.Intn(2) == 0 {
			args = append(args, "COUNT", g.num(0, 3))
		}
		g.add(args...)
	case 7:
		g.add("XREVRANGE", k, "+", g.pick([]string{"-", g.oldXid()}), "COUNT", g.num(1, 4))
	case 8:
		if g.rng.Intn(2) == 0 {
			g.add("XTRIM", k, "MAXLEN", "=", g.num(0, 6))
		} else {
			g.add("XTRIM", k, "MINID", g.oldXid())
		}
	case 9:
		g.add("XDEL", k, g.oldXid(), g.oldXid())
	case 10, 11:
		args := []string{"XGROUP", "CREATE", k, group(), g.pick([]string{"0", "$", g.oldXid()})}
		if g.rng.Intn(2) == 0 {
			args = append(args, "MKSTREAM")
		}
		g.add(args...)
	case 12:
		switch g.rng.Intn(4) {
		case 0:
			g.add("XGROUP", "DESTROY", k, group())
		case 1:
			g.add("XGROUP", "CREATECONSUMER", k, group(), consumer())
		case 2:
			g.add("XGROUP", "DELCONSUMER", k, group(), consumer())
		case 3:
			g.add("XGROUP", "SETID", k, group(), g.pick([]string{"0", "$", g.oldXid()}))
		}
	case 13, 14, 15:
		args := []string{"XREADGROUP", "GROUP", group(), consumer()}
		if g.rng.Intn(2) == 0 {
			args = append(args, "COUNT", g.num(1, 3))
		}
		if g.rng.Intn(5) == 0 {
			args = append(args, "NOACK")
		}
		if g.rng.Intn(4) == 0 {
			args = append(args, "STREAMS", pdStreams[0], pdStreams[1], ">", g.pick([]string{">", "0"}))
		} else {
			args = append(args, "STREAMS", k, g.pick([]string{">", ">", "0"}))
		}
		g.add(args...)
	case 16:
		g.add("XACK", k, group(), g.oldXid(), g.oldXid())
	case 17:
		g.add("XPENDING", k, group()) // the summary: no idle times
	case 18:
		args := []string{"XCLAIM", k, group(), consumer(), "0", g.oldXid(), g.oldXid()}
		if g.rng.Intn(2) == 0 {
			args = append(args, "JUSTID")
		}
		g.add(args...)
	case 19:
		args := []string{"XAUTOCLAIM", k, group(), consumer(), "0", "0", "COUNT", g.num(1, 4)}
		if g.rng.Intn(2) == 0 {
			args = append(args, "JUSTID")
		}
		g.add(args...)
	case 20:
		// STREAM without FULL, which would show times
		g.add("XINFO", g.pick([]string{"GROUPS", "STREAM"}), k)
	case 21:
		switch g.rng.Intn(5) {
		case 0, 1:
			g.add("XREAD", "COUNT", g.num(1, 3), "STREAMS", k, g.pick([]string{"0", g.oldXid()}))
		case 2:
			g.add("XREAD", "STREAMS", pdStreams[0], pdStreams[1], "0", g.oldXid())
		case 3:
			// blocking, 10 ms at most: new entries only ($), or any
			g.add("XREAD", "BLOCK", "10", "STREAMS", k, g.pick([]string{"$", "0", g.oldXid()}))
		case 4:
			g.add("XREADGROUP", "BLOCK", "10", "GROUP", group(), consumer(), "COUNT", "2", "STREAMS", k, ">")
		}
	}
}

func (g *pipeGen) geoCommand(tagged bool) {
	k := g.key(pdGeos, tagged)
	if g.rng.Intn(6) == 0 {
		k = g.pick(pdZsets)
	}
	places := [][3]string{
		{"13.361389", "38.115556", "Palermo"},
		{"15.087269", "37.502669", "Catania"},
		{"12.496366", "41.902782", "Rome"},
		{"2.349014", "48.864716", "Paris"},
		{"-0.127758", "51.507351", "London"},
		{"200", "10", "Nowhere"}, // out of range: an error
	}
	member := func() string { return places[g.rng.Intn(len(places))][2] }
	unit := func() string { return g.pick([]string{"m", "km", "mi", "ft"}) }
	search := func(args []string) []string {
		if g.rng.Intn(2) == 0 {
			args = append(args, "FROMMEMBER", member())
		} else {
			args = append(args, "FROMLONLAT", "13.5", "38.5")
		}
		if g.rng.Intn(2) == 0 {
			args = append(args, "BYRADIUS", g.pick([]string{"100", "500", "2000"}), "km")
		} else {
			args = append(args, "BYBOX", "400", g.pick([]string{"400", "3000"}), "km")
		}
		args = append(args, g.pick([]string{"ASC", "DESC"}))
		if g.rng.Intn(3) == 0 {
			args = append(args, "COUNT", g.num(1, 3))
		}
		return args
	}
	switch g.rng.Intn(10) {
	case 0, 1, 2:
		args := []string{"GEOADD", k}
		if g.rng.Intn(5) == 0 {
			args = append(args, g.pick([]string{"NX", "XX"}))
		}
		if g.rng.Intn(5) == 0 {
			args = append(args, "CH")
		}
		for range 1 + g.rng.Intn(3) {
			p := places[g.rng.Intn(len(places))]
			args = append(args, p[0], p[1], p[2])
		}
		g.add(args...)
	case 3:
		args := []string{"GEODIST", k, member(), member()}
		if g.rng.Intn(2) == 0 {
			args = append(args, unit())
		}
		g.add(args...)
	case 4:
		g.add("GEOPOS", k, member(), member())
	case 5:
		g.add("GEOHASH", k, member(), member())
	case 6, 7:
		args := search([]string{"GEOSEARCH", k})
		for _, opt := range []string{"WITHCOORD", "WITHDIST", "WITHHASH"} {
			if g.rng.Intn(2) == 0 {
				args = append(args, opt)
			}
		}
		g.add(args...)
	case 8:
		args := search([]string{"GEOSEARCHSTORE", g.pick(pdGeos), g.pick(pdGeos)})
		if g.rng.Intn(2) == 0 {
			args = append(args, "STOREDIST")
		}
		g.add(args...)
	case 9:
		g.add("GEORADIUSBYMEMBER", k, member(), "300", "km", "ASC", "WITHDIST")
	}
}
