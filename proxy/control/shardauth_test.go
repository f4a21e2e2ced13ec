package control

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/router"
)

func TestParseTargetArgs(t *testing.T) {
	for _, tc := range []struct {
		args    string
		targets []string
		options map[string]bool
		auth    *proxy.Auth
		err     string
	}{
		{args: "a:1 b:2", targets: []string{"a:1", "b:2"}},
		{args: "a:1 MANUAL b:2 flush", targets: []string{"a:1", "b:2"}, options: map[string]bool{"manual": true, "flush": true}},
		{args: "a:1 AUTH pw", targets: []string{"a:1"}, auth: &proxy.Auth{Password: "pw"}},
		{args: "a:1 auth2 user pw FLUSH", targets: []string{"a:1"}, options: map[string]bool{"flush": true}, auth: &proxy.Auth{Username: "user", Password: "pw"}},
		{args: "AUTH b:2 a:1", targets: []string{"a:1"}, auth: &proxy.Auth{Password: "b:2"}},       // the word after AUTH is the password
		{args: "a:1 AUTH MANUAL", targets: []string{"a:1"}, auth: &proxy.Auth{Password: "MANUAL"}}, // even an option word
		{args: "a:1 AUTH", err: "syntax error: AUTH needs a password"},
		{args: "a:1 AUTH2 user", err: "syntax error: AUTH2 needs a username and a password"},
		{args: "a:1 AUTH2", err: "syntax error: AUTH2 needs a username and a password"},
		{args: "a:1 AUTH x AUTH2 u y", err: "syntax error: AUTH or AUTH2 given twice"},
		{args: "a:1 replace", targets: []string{"a:1", "replace"}}, // not an option of this command
	} {
		t.Run(tc.args, func(t *testing.T) {
			var args [][]byte
			for _, a := range strings.Fields(tc.args) {
				args = append(args, []byte(a))
			}
			got, err := parseTargetArgs(args, "manual", "flush")
			if tc.err != "" {
				if err == nil || err.Error() != tc.err || !errors.Is(err, errSyntax) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.options == nil {
				tc.options = map[string]bool{}
			}
			if !reflect.DeepEqual(got.targets, tc.targets) || !reflect.DeepEqual(got.options, tc.options) || !reflect.DeepEqual(got.auth, tc.auth) {
				t.Errorf("got targets %q, options %v, auth %v; want %q, %v, %v", got.targets, got.options, got.auth, tc.targets, tc.options, tc.auth)
			}
		})
	}
}

// The rules of the credentials file: written at a cutover when the new
// table's credentials are not the flags', removed when they are, used at
// start only for the table they were written for.
func TestTableAuthFile(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	cfg := Config{ShardPassword: "flag-pw", StateDir: t.TempDir()}
	p := &Plane{cfg: cfg, log: zap.New(core)}
	table := func(epoch uint64, spec string) *router.Table {
		shards, err := router.ParseSpec(spec)
		if err != nil {
			t.Fatal(err)
		}
		tb, err := router.NewTable(epoch, shards)
		if err != nil {
			t.Fatal(err)
		}
		return tb
	}
	t1, t2 := table(1, "127.0.0.1:7001"), table(2, "127.0.0.1:7101,127.0.0.1:7102")
	other := proxy.Auth{Username: "mover", Password: "file-pw"}
	load := func(tb *router.Table) proxy.Auth {
		t.Helper()
		a, err := TableAuth(p.cfg, tb, p.log)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if got := load(t1); got != cfg.flagAuth() {
		t.Errorf("without a file: %v, want the flags'", got)
	}
	missing := cfg
	missing.StateDir = filepath.Join(cfg.StateDir, "not-made-yet")
	if got, err := TableAuth(missing, t1, nil); err != nil || got != cfg.flagAuth() {
		t.Errorf("without a state directory yet: %v, %v; want the flags'", got, err)
	}

	if err := p.persistAuth(t2, other); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.StateDir, "shard-auth-2.json")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file %s: %v, %v; want mode 0600", path, fi, err)
	}
	if got := load(t2); got != other {
		t.Errorf("the table of the file: %v, want %v", got, other)
	}
	if got := load(table(2, "127.0.0.1:7101")); got != cfg.flagAuth() || logs.FilterMessage("shard credentials file ignored: it is for other shards than the persisted routing table's").Len() != 1 {
		t.Errorf("same epoch, other shards: %v, want the flags' and a warning", got)
	}
	if got := load(t1); got != cfg.flagAuth() || logs.FilterMessage("shard credentials file ignored: it is not for the persisted routing table").Len() != 1 {
		t.Errorf("another epoch: %v, want the flags' and a warning", got)
	}

	p.dropStaleAuth(t2)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("dropStaleAuth removed the file of the table in use: %v", err)
	}
	p.dropStaleAuth(table(3, "127.0.0.1:7201"))
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dropStaleAuth left the file of another table: %v", err)
	}

	if err := p.persistAuth(t2, other); err != nil {
		t.Fatal(err)
	}
	if err := p.persistAuth(t2, cfg.flagAuth()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the flags' credentials left a file: %v", err)
	}

	if err := os.WriteFile(path, []byte(`{"password":"secret-in-broken-json`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := TableAuth(p.cfg, t2, p.log); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("a broken file: %v, want an error that does not quote it", err)
	}
}

// AUTH "" says the targets need no password, whatever the current shards
// take (and then the data plane's dialer sends no AUTH:
// backend.TestDialerEmptyAuth).
func TestTargetAuthEmpty(t *testing.T) {
	ta, err := parseTargetArgs([][]byte{[]byte("a:1"), []byte("AUTH"), []byte("")})
	if err != nil {
		t.Fatal(err)
	}
	if auth := ta.authOr(proxy.Auth{Username: "user", Password: "current-pw"}); auth != (proxy.Auth{}) {
		t.Errorf("AUTH \"\": credentials %v; want none", auth)
	}
}
