package command

import (
	"slices"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		args string
		want string // "" for nil
	}{
		{"GET k", "get"},
		{"get k", "get"},
		{"gEt k", "get"},
		{"OBJECT ENCODING k", "object|encoding"},
		{"object Encoding k", "object|encoding"},
		{"OBJECT", "object"},
		{"OBJECT NOSUCH k", "object"},
		{"CONFIG GET maxmemory", "config|get"},
		{"CLIENT KILL ID 1", "client|kill"},
		{"MEMORY USAGE k", "memory|usage"},
		{"XINFO STREAM s", "xinfo|stream"},
		{"FUNCTION LOAD code", "function|load"},
		{"CLUSTER COUNT-FAILURE-REPORTS id", "cluster|count-failure-reports"},
		{"GET ENCODING", "get"}, // not a container: args[1] is not a subcommand
		{"NOSUCHCOMMAND", ""},
		{"config|get maxmemory", ""}, // Redis does not accept the table name as a command
		{"GETX k", ""},
		{strings.Repeat("a", 200), ""},
	}
	for _, tt := range tests {
		got := Lookup(toArgs(strings.Fields(tt.args)))
		var name string
		if got != nil {
			name = got.Name()
		}
		if name != tt.want {
			t.Errorf("Lookup(%q) = %q, want %q", tt.args, name, tt.want)
		}
	}
	if got := Lookup(nil); got != nil {
		t.Errorf("Lookup(nil) = %v", got.Name())
	}
	if got := Lookup([][]byte{{}}); got != nil {
		t.Errorf("Lookup(empty) = %v", got.Name())
	}
}

func TestContainers(t *testing.T) {
	for _, name := range []string{"config", "client", "object", "memory", "xinfo", "function", "script",
		"cluster", "command", "xgroup", "acl", "pubsub", "latency", "module", "slowlog"} {
		i := LookupName(name)
		if i == nil || !i.IsContainer() {
			t.Errorf("%s: not a container", name)
			continue
		}
		for _, s := range i.Subcommands() {
			if s.Parent() != i {
				t.Errorf("%s: parent of %s is %v", name, s.Name(), s.Parent())
			}
			if !strings.HasPrefix(s.Name(), name+"|") {
				t.Errorf("%s: subcommand named %s", name, s.Name())
			}
		}
	}
}

func TestArityOK(t *testing.T) {
	tests := []struct {
		name  string
		nargs int
		want  bool
	}{
		{"get", 1, false},
		{"get", 2, true},
		{"get", 3, false},
		{"set", 2, false},
		{"set", 3, true},
		{"set", 9, true},
		{"mset", 3, true},
		{"mset", 2, false},
		{"ping", 1, true},
		{"ping", 2, true},
		{"ping", 3, true}, // arity -1: PING itself rejects extra arguments
		{"eval", 3, true},
		{"eval", 2, false},
		{"object|encoding", 3, true},
		{"object|encoding", 2, false},
		{"object|encoding", 4, false},
		{"config|get", 3, true},
		{"config|get", 2, false},
		{"multi", 1, true},
		{"multi", 2, false},
		{"xread", 3, false},
		{"xread", 4, true},
	}
	for _, tt := range tests {
		i := LookupName(tt.name)
		if got := i.ArityOK(tt.nargs); got != tt.want {
			t.Errorf("%s (arity %d).ArityOK(%d) = %v, want %v", tt.name, i.Arity(), tt.nargs, got, tt.want)
		}
	}
}

func TestFlagsAndTips(t *testing.T) {
	get := LookupName("get")
	if !get.IsReadonly() || !get.IsFast() || get.IsWrite() || !get.Has(FlagReadonly|FlagFast) || get.Has(FlagReadonly|FlagWrite) {
		t.Errorf("get flags = %s", get.Flags())
	}
	if got := get.ACLCategories(); got != ACLRead|ACLString|ACLFast {
		t.Errorf("get ACL = %s", got)
	}
	if got := LookupName("blpop"); !got.IsBlocking() || !got.IsWrite() {
		t.Errorf("blpop flags = %s", got.Flags())
	}
	if got := LookupName("set"); !got.IsDenyOOM() {
		t.Errorf("set flags = %s", got.Flags())
	}
	if got := LookupName("eval"); !got.IsMovableKeys() || !got.Has(FlagNoMandatoryKeys) {
		t.Errorf("eval flags = %s", got.Flags())
	}
	if got := LookupName("save"); !got.IsNoMulti() {
		t.Errorf("save flags = %s", got.Flags())
	}
	if got := LookupName("subscribe"); !got.IsPubSub() || !got.IsNoScript() {
		t.Errorf("subscribe flags = %s", got.Flags())
	}
	if got := LookupName("config|set"); !got.IsAdmin() || !got.Has(FlagNoScript|FlagLoading|FlagStale) {
		t.Errorf("config|set flags = %s", got.Flags())
	}
	if got := LookupName("script|kill"); !got.Has(FlagAllowBusy) {
		t.Errorf("script|kill flags = %s", got.Flags())
	}
	if got := LookupName("auth"); !got.Has(FlagNoAuth) {
		t.Errorf("auth flags = %s", got.Flags())
	}

	tips := []struct {
		name     string
		req      RequestPolicy
		resp     ResponsePolicy
		nd, ndo  bool
		tipsText string
	}{
		{"dbsize", RequestAllShards, ResponseAggSum, false, false, "all_shards agg_sum"},
		{"keys", RequestAllShards, ResponseDefault, false, true, "all_shards "},
		{"randomkey", RequestAllShards, ResponseDefault, true, false, "all_shards "},
		{"config|set", RequestAllNodes, ResponseAllSucceeded, false, false, "all_nodes all_succeeded"},
		{"del", RequestMultiShard, ResponseAggSum, false, false, "multi_shard agg_sum"},
		{"msetnx", RequestMultiShard, ResponseAggMin, false, false, "multi_shard agg_min"},
		{"script|exists", RequestAllShards, ResponseAggLogicalAnd, false, false, "all_shards agg_logical_and"},
		{"script|kill", RequestAllShards, ResponseOneSucceeded, false, false, "all_shards one_succeeded"},
		{"scan", RequestSpecial, ResponseDefault, true, false, "special "},
		{"info", RequestAllShards, ResponseSpecial, true, false, "all_shards special"},
		{"get", RequestDefault, ResponseDefault, false, false, " "},
		{"smembers", RequestDefault, ResponseDefault, false, true, " "},
	}
	for _, tt := range tips {
		i := LookupName(tt.name)
		if i.RequestPolicy() != tt.req || i.ResponsePolicy() != tt.resp ||
			i.NondeterministicOutput() != tt.nd || i.NondeterministicOutputOrder() != tt.ndo {
			t.Errorf("%s tips = %+v", tt.name, i.Tips())
		}
		if got := i.RequestPolicy().String() + " " + i.ResponsePolicy().String(); got != tt.tipsText {
			t.Errorf("%s tips text %q, want %q", tt.name, got, tt.tipsText)
		}
	}
}

func TestKeySpecsAndFallbacksComplete(t *testing.T) {
	for _, i := range allInfos() {
		for _, ks := range i.KeySpecs() {
			if ks.FindKeys == FindKeynum && i.numkeys == nil {
				t.Errorf("%s: keynum spec but no numkeys error wording in numkeysByName", i.Name())
			}
			incomplete := ks.BeginSearch == BeginUnknown || ks.FindKeys == FindUnknown || ks.Flags&KeyIncomplete != 0
			if incomplete && i.keysFallback == nil {
				t.Errorf("%s: incomplete key spec %+v but no fallback in keysFallbackByName", i.Name(), ks)
			}
		}
		onlyNotKeys := len(i.KeySpecs()) > 0
		for _, ks := range i.KeySpecs() {
			onlyNotKeys = onlyNotKeys && ks.Flags&KeyNotKey != 0
		}
		if i.HasKeys() != ((i.FirstKey() != 0 || i.IsMovableKeys()) && !onlyNotKeys) {
			t.Errorf("%s: HasKeys = %v, first key %d, flags %s", i.Name(), i.HasKeys(), i.FirstKey(), i.Flags())
		}
	}
}

func TestKeys(t *testing.T) {
	tests := []struct {
		line string
		want []int
		err  error
	}{
		{"GET k", []int{1}, nil},
		{"MSET a 1 b 2", []int{1, 3}, nil},
		{"EVAL s 2 a b x", []int{3, 4}, nil},
		{"EVAL s 0 x", nil, nil},
		{"EVAL s 3 a b", nil, ErrNumkeysTooMany},
		{"EVAL s -1 a", nil, ErrNumkeysNegative},
		{"EVAL s x a", nil, ErrNotInteger},
		{"FCALL f x a", nil, ErrNumkeysBad},
		{"ZUNIONSTORE d 2 a b WEIGHTS 1 2", []int{1, 3, 4}, nil},
		{"ZUNION 3 a b", nil, ErrSyntax},
		{"LMPOP 0 a LEFT", nil, ErrNumkeysNotPositive},
		{"SINTERCARD 3 a b", nil, ErrNumkeysTooMany},
		{"XREAD COUNT 2 STREAMS a b 0 0", []int{4, 5}, nil},
		{"XREADGROUP GROUP streams c STREAMS streams >", []int{5}, nil},
		{"GEORADIUS g 0 0 1 km STORE d", []int{1, 7}, nil},
		{"SORT k BY w GET store STORE d", []int{1, 7}, nil},
		{"SORT_RO k BY w", []int{1}, nil},
		{"MIGRATE h 1 k 0 10", []int{3}, nil},
		{"MIGRATE h 1 \"\" 0 10 KEYS a b", []int{7, 8}, nil},
		{"OBJECT ENCODING k", []int{2}, nil},
		{"MEMORY USAGE k SAMPLES 5", []int{2}, nil},
		{"PING", nil, nil},
		{"GET a b", nil, nil},         // arity error: no keys
		{"EVAL s", nil, nil},          // arity error, not a numkeys error
		{"ZUNIONSTORE d 1", nil, nil}, // arity error
		{"SPUBLISH ch m", nil, nil},
	}
	for _, tt := range tests {
		f := strings.Fields(tt.line)
		for j := range f {
			if f[j] == `""` {
				f[j] = ""
			}
		}
		args := toArgs(f)
		got, err := Lookup(args).Keys(args, nil)
		if err != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("Keys(%s) = %v, %v; want %v, %v", tt.line, got, err, tt.want, tt.err)
		}
	}
}

func TestZunionErrorNamesCommand(t *testing.T) {
	args := toArgs(strings.Fields("ZINTERSTORE d 0 a"))
	_, err := Lookup(args).Keys(args, nil)
	if want := "ERR at least 1 input key is needed for 'zinterstore' command"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestRoutingKeys(t *testing.T) {
	tests := []struct {
		line string
		want []int
	}{
		{"SPUBLISH ch m", []int{1}},
		{"SSUBSCRIBE a b", []int{1, 2}},
		{"SUNSUBSCRIBE a", []int{1}},
		{"SUNSUBSCRIBE", nil},
		{"GET k", []int{1}},
		{"PUBLISH ch m", nil},
	}
	for _, tt := range tests {
		args := toArgs(strings.Fields(tt.line))
		got, err := Lookup(args).RoutingKeys(args, nil)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("RoutingKeys(%s) = %v, %v; want %v", tt.line, got, err, tt.want)
		}
	}
}

func TestParseInt(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1", 1, true},
		{"-1", -1, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false},
		{"99999999999999999999", 0, false},
		{"", 0, false},
		{"-", 0, false},
		{"-0", 0, false},
		{"01", 0, false},
		{"+1", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1.5", 0, false},
		{"1x", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseInt([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseInt(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestStrings(t *testing.T) {
	if got := (FlagWrite | FlagDenyOOM).String(); got != "write denyoom" {
		t.Errorf("Flag.String = %q", got)
	}
	if got := (ACLRead | ACLString).String(); got != "@read @string" {
		t.Errorf("ACLCategory.String = %q", got)
	}
	if got := (KeyRW | KeyAccess).String(); got != "RW access" {
		t.Errorf("KeySpecFlag.String = %q", got)
	}
}

var (
	benchLines = [][][]byte{
		toArgs([]string{"GET", "key:1"}),
		toArgs([]string{"set", "key:1", "value"}),
		toArgs([]string{"HSET", "h", "f", "v"}),
		toArgs([]string{"EVALSHA", "0123456789012345678901234567890123456789", "2", "a", "b", "x"}),
		toArgs([]string{"XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "STREAMS", "s1", "s2", ">", ">"}),
		toArgs([]string{"OBJECT", "ENCODING", "k"}),
		toArgs([]string{"MGET", "a", "b", "c", "d"}),
		toArgs([]string{"CLIENT", "SETNAME", "x"}),
		toArgs([]string{"SORT", "k", "BY", "w", "STORE", "d"}),
	}
	sinkInfo *Info
	sinkKeys []int
)

func TestLookupAndKeysDoNotAllocate(t *testing.T) {
	dst := make([]int, 0, 16)
	allocs := testing.AllocsPerRun(100, func() {
		for _, args := range benchLines {
			sinkInfo = Lookup(args)
		}
	})
	if allocs != 0 {
		t.Errorf("Lookup: %v allocs/run, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		for _, args := range benchLines {
			var err error
			sinkKeys, err = Lookup(args).Keys(args, dst[:0])
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("Lookup+Keys: %v allocs/run, want 0", allocs)
	}
	bad := toArgs([]string{"ZUNION", "x", "a"})
	allocs = testing.AllocsPerRun(100, func() {
		sinkKeys, _ = Lookup(bad).Keys(bad, dst[:0])
	})
	if allocs != 0 {
		t.Errorf("Keys with error: %v allocs/run, want 0", allocs)
	}
}

func BenchmarkLookup(b *testing.B) {
	b.ReportAllocs()
	for n := 0; b.Loop(); n++ {
		sinkInfo = Lookup(benchLines[n%len(benchLines)])
	}
}

func BenchmarkLookupKeys(b *testing.B) {
	b.ReportAllocs()
	dst := make([]int, 0, 16)
	for n := 0; b.Loop(); n++ {
		args := benchLines[n%len(benchLines)]
		sinkKeys, _ = Lookup(args).Keys(args, dst[:0])
	}
}

// FuzzKeys feeds random arguments to random commands: Keys must not panic,
// must return indexes inside args, must keep what dst held, and must leave
// dst unchanged when it reports an error.
func FuzzKeys(f *testing.F) {
	for _, line := range corpusLines() {
		f.Add(strings.Join(line, "\x00"))
	}
	f.Add("EVAL\x00s\x009223372036854775807\x00a")
	f.Add("XREAD\x00STREAMS")
	f.Add("MIGRATE\x00h\x00p\x00\x000\x000\x00KEYS")
	f.Add("SORT")
	f.Add("GEORADIUS\x00g\x000\x000\x001\x00km\x00STORE")
	infos := allInfos()
	f.Fuzz(func(t *testing.T, s string) {
		args := toArgs(strings.Split(s, "\x00"))
		check := func(i *Info) {
			for _, routing := range []bool{false, true} {
				dst := []int{-7}
				got, err := i.keys(args, dst, routing)
				if len(got) == 0 || got[0] != -7 {
					t.Fatalf("%s %q: dst prefix lost: %v", i.Name(), s, got)
				}
				if err != nil && len(got) != 1 {
					t.Fatalf("%s %q: error %v with keys %v", i.Name(), s, err, got)
				}
				for _, p := range got[1:] {
					if p < 1 || p >= len(args) {
						t.Fatalf("%s %q: index %d out of range [1,%d)", i.Name(), s, p, len(args))
					}
				}
			}
		}
		if i := Lookup(args); i != nil {
			check(i)
		}
		// Also run the arguments under a command chosen by their first
		// byte, so every key spec shape meets every input.
		if len(s) > 0 {
			check(infos[int(s[0])%len(infos)])
		}
	})
}

// IDs number every command and subcommand once, densely, so that a slice
// of Count() entries holds a figure for each.
func TestIDs(t *testing.T) {
	infos := allInfos()
	if Count() != len(infos) {
		t.Fatalf("Count() = %d, want %d commands and subcommands", Count(), len(infos))
	}
	seen := make([]string, Count())
	for _, i := range infos {
		if id := i.ID(); id < 0 || id >= Count() || seen[id] != "" {
			t.Fatalf("%s has ID %d: out of range or taken by %q", i.Name(), id, seen[max(0, min(id, Count()-1))])
		}
		seen[i.ID()] = i.Name()
	}
	if got := LookupName("config|get"); got.ID() != Lookup(toArgs([]string{"CONFIG", "GET", "x"})).ID() {
		t.Errorf("LookupName and Lookup give CONFIG GET different IDs")
	}
}
