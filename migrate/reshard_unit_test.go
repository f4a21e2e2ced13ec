package migrate

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/router"
)

func TestNormalizeExpiry(t *testing.T) {
	const recv = 1_000_000
	tests := []struct {
		in   string
		want string // the normalized command; "" = unchanged
		at   int64  // -1: no expiry
	}{
		{"SET k v", "", -1},
		{"SET k v NX", "", -1},
		{"SET k v KEEPTTL", "", -1},
		{"SET k v PXAT 5000", "SET k v PXAT 5000", 5000},
		{"set k v px 100 nx", "set k v nx PXAT 1000100", 1_000_100},
		{"SET k v EX 2 GET", "SET k v GET PXAT 1002000", 1_002_000},
		{"SET k v EXAT 7", "SET k v PXAT 7000", 7000},
		{"SETEX k 3 v", "SET k v PXAT 1003000", 1_003_000},
		{"PSETEX k 30 v", "SET k v PXAT 1000030", 1_000_030},
		{"PEXPIREAT k 123 GT", "PEXPIREAT k 123", 123},
		{"EXPIREAT k 5", "PEXPIREAT k 5000", 5000},
		{"EXPIRE k 10 NX", "PEXPIREAT k 1010000", 1_010_000},
		{"PEXPIRE k 10", "PEXPIREAT k 1000010", 1_000_010},
		{"GETEX k EX 1", "PEXPIREAT k 1001000", 1_001_000},
		{"GETEX k PERSIST", "PERSIST k", -1},
		{"GETEX k", "", -1},
		{"RESTORE k 0 payload", "", -1},
		{"RESTORE k 50 payload REPLACE", "RESTORE k 1000050 payload REPLACE ABSTTL", 1_000_050},
		{"restore k 9000 payload ABSTTL", "restore k 9000 payload ABSTTL", 9000},
		{"HSET k f v", "", -1},
	}
	for _, tt := range tests {
		args := bytes.Fields([]byte(tt.in))
		n, err := normalizeExpiry(args, recv)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		got := string(bytes.Join(n.args, []byte(" ")))
		want := tt.want
		if want == "" {
			want = tt.in
		}
		at := int64(-1)
		if n.tIdx >= 0 {
			at = n.at
			if string(n.args[n.tIdx]) != string(bytes.Fields([]byte(want))[n.tIdx]) || string(n.key) != "k" {
				t.Errorf("%s: expiry at argument %d (%s), key %q", tt.in, n.tIdx, n.args[n.tIdx], n.key)
			}
		}
		if got != want || at != tt.at {
			t.Errorf("%s: got %q at %d, want %q at %d", tt.in, got, at, want, tt.at)
		}
	}
	if _, err := normalizeExpiry(bytes.Fields([]byte("SET k v PX abc")), recv); err == nil {
		t.Errorf("SET ... PX abc: want an error")
	}
}

func TestGuardSet(t *testing.T) {
	g := newGuardSet()
	if got, want := g.add([]byte("b"), 200), int64(200+guardShift); got != want {
		t.Errorf("guard of 200: %d, want %d", got, want)
	}
	g.add([]byte("a"), 100)
	g.add([]byte("c"), 300)
	g.carry([]byte("a"), []byte("a2"))
	g.carry([]byte("none"), []byte("x"))
	g.add([]byte("b"), 250) // renewed: the older entry stays, the map follows
	var got []string
	for _, e := range g.due(250, nil) {
		got = append(got, e.key)
	}
	if strings.Join(got, ",") != "a,a2,b,b" && strings.Join(got, ",") != "a2,a,b,b" {
		t.Errorf("due(250) = %v", got)
	}
	if _, ok := g.byKey["b"]; ok {
		t.Errorf("b still mapped after its latest guard was due")
	}
	if g.len() != 1 || len(g.due(1<<62, nil)) != 1 || g.len() != 0 {
		t.Errorf("the last entry did not come out")
	}
}

func TestFunctionArgs(t *testing.T) {
	for in, want := range map[string]string{
		"FUNCTION LOAD code":         "FUNCTION LOAD REPLACE code",
		"function load replace code": "function load replace code",
		"FUNCTION RESTORE p":         "FUNCTION RESTORE p REPLACE",
		"FUNCTION RESTORE p APPEND":  "FUNCTION RESTORE p REPLACE",
		"FUNCTION RESTORE p FLUSH":   "FUNCTION RESTORE p FLUSH",
		"FUNCTION DELETE lib":        "FUNCTION DELETE lib",
		"FUNCTION FLUSH":             "FUNCTION FLUSH",
	} {
		got := string(bytes.Join(functionArgs(bytes.Fields([]byte(in))), []byte(" ")))
		if got != want {
			t.Errorf("%s: got %q, want %q", in, got, want)
		}
	}
}

func TestReshardConfigValidate(t *testing.T) {
	all := []router.Range{{From: 0, To: router.NumSlots - 1}}
	from := mustTable(t, 3, []router.Shard{{Addr: "a:1", Ranges: all}})
	to := mustTable(t, 4, []router.Shard{{Addr: "b:1", Ranges: all}})
	base := DefaultReshardConfig()
	base.From, base.To, base.WorkDir = from, to, "/tmp"
	base.Proxy = &testProxy{}
	for _, tt := range []struct {
		field string
		edit  func(c *ReshardConfig)
	}{
		{"From", func(c *ReshardConfig) { c.From = nil }},
		{"To", func(c *ReshardConfig) { c.To = from }},
		{"WorkDir", func(c *ReshardConfig) { c.WorkDir = "" }},
		{"Proxy", func(c *ReshardConfig) { c.Proxy = nil }},
		{"MaxLagTime", func(c *ReshardConfig) { c.MaxLagTime = 0 }},
		{"CutoverTimeout", func(c *ReshardConfig) { c.CutoverTimeout = -time.Second }},
		{"ExpiryGuard", func(c *ReshardConfig) { c.ExpiryGuard = -1 }},
	} {
		c := base
		tt.edit(&c)
		err := c.validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: %v, want ErrInvalidConfig naming the field", tt.field, err)
		}
	}
	if err := base.validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestReshardStatusWriteInfo(t *testing.T) {
	st := ReshardStatus{ID: "reshard-2-x", State: ReshardFailed, Epoch: 2, Targets: 5, LagBytes: 12, LagTime: 1500 * time.Millisecond,
		Sources: []ReshardSourceStatus{{Addr: "127.0.0.1:1", Copied: true, Applied: 7}},
		Err:     errors.New("line one\nline two"), PauseUS: 42}
	var b bytes.Buffer
	must(t, st.WriteInfo(&b))
	out := b.String()
	for _, want := range []string{"state:failed\r\n", "epoch:2\r\n", "lag_bytes:12\r\n", "lag_ms:1500\r\n", "pause_us:42\r\n",
		"source0:addr=127.0.0.1:1,copied=1,", "applied=7,", "error:line one; line two\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("WriteInfo lacks %q:\n%s", want, out)
		}
	}
}
