package migrate

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/reshard/reshard/router"
)

func TestRDBVersionFor(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    uint16
	}{
		{"7.0.15", 10}, {"7.2.4", 11}, {"7.4.1", 12}, {"8.0.0", 12}, {"8.2.1", 12},
		{"6.2.14", 9}, {"5.0.7", 9}, {"4.0.14", 8}, {"3.2.12", 7}, {"3.0.7", 6}, {"garbage", 10},
	} {
		if got := rdbVersionFor(tc.version); got != tc.want {
			t.Errorf("rdbVersionFor(%q) = %d, want %d", tc.version, got, tc.want)
		}
	}
}

func TestTempKeyKeepsSlot(t *testing.T) {
	j := &job{nonce: "abc"}
	for _, key := range []string{"plain", "{tag}x", "a{}b", "{", "}{", "x{y}z{w}", "", "\x00\xff"} {
		slot := router.Slot([]byte(key))
		tmp := j.tempKey(slot)
		if got := router.Slot([]byte(tmp)); got != slot {
			t.Errorf("tempKey for %q (slot %d) is %q in slot %d", key, slot, tmp, got)
		}
	}
	for s := 0; s < router.NumSlots; s++ {
		if got := router.Slot([]byte("{" + j.tags[s] + "}")); got != uint16(s) {
			t.Fatalf("tag %q of slot %d hashes to %d", j.tags[s], s, got)
		}
	}
}

func TestAppendScore(t *testing.T) {
	for _, f := range []float64{0, -0.5, 1.5, 0.1, 1e300, 5e-324, math.MaxFloat64, -7, 123456789.123456789, math.Inf(1), math.Inf(-1)} {
		s := string(appendScore(nil, f))
		got, err := strconv.ParseFloat(s, 64)
		if err != nil || got != f {
			t.Errorf("appendScore(%v) = %q, parses back to %v (%v)", f, s, got, err)
		}
	}
}

func TestRoute(t *testing.T) {
	shards, err := router.ParseSpec("127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")
	if err != nil {
		t.Fatal(err)
	}
	table, _ := router.NewTable(0, shards)
	rt := &tailRouter{table: table}
	// Keys on three different shards, and a second key on the first.
	var on [3][]string
	for i := 0; len(on[0]) < 2 || len(on[1]) < 1 || len(on[2]) < 1; i++ {
		k := "k" + strconv.Itoa(i)
		s := table.ShardOf([]byte(k))
		on[s] = append(on[s], k)
	}
	a, a2, b, c := on[0][0], on[0][1], on[1][0], on[2][0]
	args := func(s ...string) [][]byte {
		out := make([][]byte, len(s))
		for i, x := range s {
			out[i] = []byte(x)
		}
		return out
	}
	render := func(ps []part) string {
		var out []string
		for _, p := range ps {
			out = append(out, strconv.Itoa(p.target)+":"+string(bytes.Join(p.args, []byte(" "))))
		}
		return strings.Join(out, " | ")
	}
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr string
	}{
		{[]string{"SET", a, "v"}, "0:SET " + a + " v", ""},
		{[]string{"DEL", a, b, a2, c}, "0:DEL " + a + " " + a2 + " | 1:DEL " + b + " | 2:DEL " + c, ""},
		{[]string{"MSET", b, "1", a, "2", c, "3"}, "1:MSET " + b + " 1 | 0:MSET " + a + " 2 | 2:MSET " + c + " 3", ""},
		{[]string{"RENAME", a, a2}, "0:RENAME " + a + " " + a2, ""},
		{[]string{"PUBLISH", "ch", "m"}, "", ""},
		{[]string{"FUNCTION", "DELETE", "lib"}, "-1:FUNCTION DELETE lib", ""},
		{[]string{"RENAME", a, b}, "", "RENAME has keys on targets"},
		{[]string{"SWAPDB", "0", "1"}, "", "SWAPDB"},
		{[]string{"COPY", a, a2, "DB", "3"}, "", "COPY"},
		{[]string{"NOSUCHCMD", a}, "", "unknown command"},
		{[]string{"DBSIZE"}, "", "no key"},
	} {
		got, err := rt.route(args(tc.args...), nil)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("route(%q) error %v, want one containing %q", tc.args, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("route(%q): %v", tc.args, err)
		case render(got) != tc.want:
			t.Errorf("route(%q) = %s, want %s", tc.args, render(got), tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	base := DefaultRestoreConfig()
	base.Sources = []string{"x.rdb"}
	base.Targets = []router.Shard{{Addr: "127.0.0.1:1", Ranges: []router.Range{{From: 0, To: 16383}}}}
	if err := base.validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		field string
		mod   func(c *RestoreConfig)
	}{
		{"Sources", func(c *RestoreConfig) { c.Sources = nil }},
		{"Targets", func(c *RestoreConfig) { c.Targets = nil }},
		{"DB", func(c *RestoreConfig) { c.DB = -2 }},
		{"Flush", func(c *RestoreConfig) { c.Replace, c.Flush = true, true }},
		{"Window", func(c *RestoreConfig) { c.Window = 0 }},
		{"ConnsPerTarget", func(c *RestoreConfig) { c.ConnsPerTarget = 0 }},
		{"BigKeyBytes", func(c *RestoreConfig) { c.BigKeyBytes = 0 }},
	} {
		c := base
		tc.mod(&c)
		err := c.validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: validate() = %v, want ErrInvalidConfig naming the field", tc.field, err)
		}
	}
}

func TestPreflightErrorUnwraps(t *testing.T) {
	err := error(&PreflightError{Problems: []error{
		problemf(ErrMultipleDBs, "dbs"),
		problemf(ErrNoRoom, "room"),
	}})
	for _, target := range []error{ErrPreflight, ErrMultipleDBs, ErrNoRoom} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(%v, %v) = false", err, target)
		}
	}
	if errors.Is(err, ErrTarget) {
		t.Error("unrelated sentinel matches")
	}
	if !strings.Contains(err.Error(), "2 problems") || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("message %q", err)
	}
}

func TestRoom(t *testing.T) {
	cfg := DefaultRestoreConfig()
	buffers := int64(cfg.ConnsPerTarget) * (1000 + 64<<10)
	share := Share{Keys: 10, Bytes: 500, Memory: 1 << 20, largest: 1000}
	for _, tc := range []struct {
		name  string
		ti    targetInfo
		flush bool
		want  string // "" for room
	}{
		{"no limit known", targetInfo{UsedMemory: 1 << 30}, false, ""},
		{"fits maxmemory", targetInfo{MaxMemory: 2<<20 + buffers, UsedMemory: 1 << 20}, false, ""},
		{"over maxmemory", targetInfo{MaxMemory: 2<<20 + buffers - 1, UsedMemory: 1 << 20}, false, "maxmemory 2.1 MiB, 1.0 MiB used"},
		{"flush frees the dataset", targetInfo{MaxMemory: 2<<20 + buffers - 1, UsedMemory: 1 << 20, DatasetBytes: 1000}, true, ""},
		{"host memory without maxmemory", targetInfo{SystemMemory: 2 << 20, UsedMemory: 1 << 20}, false, "no maxmemory, and its host has 2.0 MiB"},
		{"maxmemory beats host memory", targetInfo{MaxMemory: 4 << 20, SystemMemory: 2 << 20, UsedMemory: 1 << 20}, false, ""},
	} {
		c := cfg
		c.Flush = tc.flush
		err := tc.ti.room(share, &c)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: room() = %v, want room", tc.name, err)
		case tc.want != "" && (!errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: room() = %v, want ErrNoRoom saying %q", tc.name, err, tc.want)
		}
	}
}

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		noun string
		want string
	}{
		{1, "key", "1 key"},
		{0, "key", "0 keys"},
		{2, "tail command", "2 tail commands"},
		{1, "function library", "1 function library"},
		{3, "function library", "3 function libraries"},
		{1, "mismatch", "1 mismatch"},
		{0, "mismatch", "0 mismatches"},
	} {
		if got := count(tc.n, tc.noun); got != tc.want {
			t.Errorf("count(%d, %q) = %q, want %q", tc.n, tc.noun, got, tc.want)
		}
	}
	rep := Report{Sources: []SourceReport{{RDB: "a.rdb", Keys: 1, Tail: "a.aof", TailCommands: 1}}, Targets: []TargetReport{{Addr: "t"}}}
	got := rep.String()
	for _, want := range []string{"1 source, 1 target", "1 key;", "1 command\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}

// TestConfigErrorText: front ends word a configuration error with their
// own flags or command words.
func TestConfigErrorText(t *testing.T) {
	c := DefaultRestoreConfig()
	c.Sources, c.Targets = []string{"x.rdb"}, []router.Shard{{Addr: "127.0.0.1:1", Ranges: []router.Range{{From: 0, To: 16383}}}}
	c.Replace, c.Flush = true, true
	var ce *ConfigError
	if err := c.validate(); !errors.As(err, &ce) {
		t.Fatalf("validate() = %v, want a *ConfigError", err)
	}
	flag := func(f string) string { return "--" + strings.ToLower(f) }
	if got, want := ce.Text(flag), "--replace and --flush exclude each other"; !strings.HasPrefix(got, want) {
		t.Errorf("Text = %q, want %q...", got, want)
	}
	c.Replace, c.Window = false, 0
	if err := c.validate(); !errors.As(err, &ce) || ce.Text(flag) != "--window 0: must be positive" {
		t.Errorf("validate() = %v, want --window 0: must be positive", err)
	}
}
