package command

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
)

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func doArgs(prefix []string, f []string) []any {
	out := make([]any, 0, len(prefix)+len(f))
	for _, s := range prefix {
		out = append(out, s)
	}
	for _, s := range f {
		out = append(out, s)
	}
	return out
}

// TestKeysMatchRedis checks Keys against COMMAND GETKEYS for every corpus
// line, and ArityOK against GETKEYS's own arity check.
func TestKeysMatchRedis(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client()
	ctx := ctxT(t)

	lines := corpusLines()
	if len(lines) < 150 {
		t.Fatalf("corpus has %d lines, want at least 150", len(lines))
	}
	groups := map[string]bool{}
	for _, f := range lines {
		line := strings.Join(f, " ")
		args := toArgs(f)
		info := Lookup(args)
		if info == nil {
			t.Errorf("%s: Lookup = nil", line)
			continue
		}
		groups[info.Group()] = true

		want, gkErr := c.Do(ctx, doArgs([]string{"COMMAND", "GETKEYS"}, f)...).StringSlice()
		if gkErr != nil && !isRedisError(gkErr) {
			t.Fatalf("%s: COMMAND GETKEYS: %v", line, gkErr)
		}
		// GETKEYS wants at least one argument after the command name:
		// for a bare name it fails its own arity check and says nothing
		// about the command's.
		bare := gkErr != nil && strings.Contains(gkErr.Error(), "'command|getkeys'")
		arityErr := gkErr != nil && strings.Contains(gkErr.Error(), "Invalid number of arguments")
		if !bare && arityErr == info.ArityOK(len(args)) {
			t.Errorf("%s: %s.ArityOK(%d) = %v, but GETKEYS says %v", line, info.Name(), len(args), info.ArityOK(len(args)), gkErr)
		}
		if gkErr != nil {
			want = nil
		}

		pos, err := info.Keys(args, nil)
		if err != nil {
			if len(want) > 0 {
				t.Errorf("%s: Keys error %q, GETKEYS = %q", line, err, want)
			}
			if len(pos) != 0 {
				t.Errorf("%s: Keys returned %v with error %v", line, pos, err)
			}
		}
		var got []string
		for _, p := range pos {
			if p < 1 || p >= len(args) {
				t.Fatalf("%s: key index %d out of range", line, p)
			}
			got = append(got, f[p])
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: Keys = %q, GETKEYS = %q (%v)", line, got, want, gkErr)
		}
	}

	for _, info := range allInfos() {
		if !groups[info.Group()] {
			t.Errorf("corpus has no command of group %q (e.g. %s)", info.Group(), info.Name())
			groups[info.Group()] = true
		}
	}
}

func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// TestKeysMatchRedisRandom compares Keys with COMMAND GETKEYS on random
// argument lists, for every command with keys, built from the keywords and
// numbers key specs react to, so that keyword searches, numkeys counts and
// the SORT and MIGRATE fallbacks meet inputs nobody thought to write down.
func TestKeysMatchRedisRandom(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client()
	ctx := ctxT(t)

	vocab := []string{"x", "x", "x", "x", "0", "1", "2", "3", "-1", "",
		"STORE", "store", "STOREDIST", "STREAMS", "streams", "KEYS", "keys",
		"BY", "GET", "LIMIT", "AUTH", "AUTH2", "COPY", "GROUP", "COUNT", "BLOCK"}
	rng := rand.New(rand.NewPCG(1, 2))
	type line struct {
		info *Info
		f    []string
	}
	var lines []line
	for _, info := range allInfos() {
		if !info.HasKeys() {
			continue
		}
		prefix := []string{info.Name()}
		if p := info.Parent(); p != nil {
			prefix = []string{p.Name(), strings.TrimPrefix(info.Name(), p.Name()+"|")}
		}
		for n := 0; n < 100; n++ {
			argc := info.Arity()
			if argc < 0 {
				argc = -argc + rng.IntN(7)
			}
			f := append([]string(nil), prefix...)
			for len(f) < argc {
				w := vocab[rng.IntN(len(vocab))]
				if w == "x" {
					w = "x" + strconv.Itoa(len(f)) // unique, so values name positions
				}
				f = append(f, w)
			}
			lines = append(lines, line{info, f})
		}
	}

	pipe := c.Pipeline()
	cmds := make([]*redis.Cmd, len(lines))
	for j, l := range lines {
		cmds[j] = pipe.Do(ctx, doArgs([]string{"COMMAND", "GETKEYS"}, l.f)...)
	}
	_, _ = pipe.Exec(ctx)
	for j, l := range lines {
		want, gkErr := cmds[j].StringSlice()
		if gkErr != nil && !isRedisError(gkErr) {
			t.Fatalf("%q: COMMAND GETKEYS: %v", l.f, gkErr)
		}
		args := toArgs(l.f)
		if got := Lookup(args); got != l.info {
			t.Fatalf("%q: Lookup = %v, want %s", l.f, got, l.info.Name())
		}
		// A numkeys error means no keys; GETKEYS replies an error, or an
		// empty list for no_mandatory_keys commands (EVAL, FCALL).
		pos, err := l.info.Keys(args, nil)
		if err != nil && len(want) > 0 {
			t.Errorf("%q: Keys error %q, GETKEYS = %q", l.f, err, want)
		}
		var got []string
		for _, p := range pos {
			got = append(got, l.f[p])
		}
		if gkErr != nil {
			want = nil
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q: Keys = %q, GETKEYS = %q (%v)", l.f, got, want, gkErr)
		}
	}
	t.Logf("%d random lines compared", len(lines))
}

// TestNumkeysErrorsMatchRedis runs numkeys commands with bad counts on a
// real server and checks that whenever Keys reports an error, the server
// replies with exactly that error.
func TestNumkeysErrorsMatchRedis(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client()
	ctx := ctxT(t)

	// FCALL checks numkeys only once it has found the function.
	lib := "#!lua name=lib\nredis.register_function{function_name='f', callback=function(keys, args) return 1 end, flags={'no-writes'}}"
	if err := c.FunctionLoad(ctx, lib).Err(); err != nil {
		t.Fatalf("FUNCTION LOAD: %v", err)
	}
	templates := []string{
		"EVAL return N a b",
		"EVAL_RO return N a b",
		"EVALSHA 0123456789012345678901234567890123456789 N a b",
		"EVALSHA_RO 0123456789012345678901234567890123456789 N a b",
		"FCALL f N a b",
		"FCALL_RO f N a b",
		"ZUNION N a b",
		"ZINTER N a b",
		"ZDIFF N a b",
		"ZINTERCARD N a b",
		"ZUNIONSTORE d N a b",
		"ZINTERSTORE d N a b",
		"ZDIFFSTORE d N a b",
		"SINTERCARD N a b",
		"LMPOP N a b LEFT",
		"ZMPOP N a b MIN",
		"BLMPOP 0.01 N a b LEFT",
		"BZMPOP 0.01 N a b MIN",
	}
	values := []string{"x", "", "-1", "0", "1", "3", "4", "1.5", "01", "+1", " 1", "-0",
		"99999999999999999999", "9223372036854775807", "-9223372036854775808", "2147483648", "4294967297"}
	checked := 0
	for _, tmpl := range templates {
		for _, v := range values {
			f := strings.Fields(tmpl)
			for j := range f {
				if f[j] == "N" {
					f[j] = v
				}
			}
			args := toArgs(f)
			info := Lookup(args)
			pre := []int{42}
			pos, kerr := info.Keys(args, pre)
			if kerr == nil {
				continue
			}
			checked++
			if len(pos) != 1 || pos[0] != 42 {
				t.Errorf("%q: Keys changed dst on error: %v", f, pos)
			}
			err := c.Do(ctx, doArgs(nil, f)...).Err()
			if err == nil || err.Error() != kerr.Error() {
				t.Errorf("%q: Keys error %q, redis-server replies %v", f, kerr, err)
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d error cases checked", checked)
	}
}

// allInfos returns every command and subcommand in the table.
func allInfos() []*Info {
	var out []*Info
	for j := range table {
		out = append(out, &table[j])
		for k := range table[j].subs {
			out = append(out, &table[j].subs[k])
		}
	}
	return out
}

// TestTableMatchesServer keeps table_gen.go honest against the installed
// redis-server: same version, same command names (subcommands included),
// same arity, flags and legacy key positions.
func TestTableMatchesServer(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client()
	ctx := ctxT(t)

	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "redis_version:"+SourceVersion+"\r\n") {
		t.Errorf("table was generated from redis %s, installed server differs; run go generate in proxy/command", SourceVersion)
	}

	names, err := c.Do(ctx, "COMMAND", "LIST").StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, n := range names {
		n = strings.ToLower(n)
		listed[n] = true
		i := LookupName(n)
		if i == nil {
			t.Errorf("COMMAND LIST has %q, the table does not", n)
			continue
		}
		if i.Name() != n {
			t.Errorf("LookupName(%q).Name() = %q", n, i.Name())
		}
		// Lookup must reach it from client arguments too.
		f := strings.SplitN(n, "|", 2)
		if got := Lookup(toArgs(f)); got != i {
			t.Errorf("Lookup(%q) = %v, want %s", f, got, n)
		}
	}
	for _, i := range allInfos() {
		if !listed[i.Name()] {
			t.Errorf("table has %q, COMMAND LIST does not", i.Name())
		}
	}

	raw, err := c.Do(ctx, "COMMAND").Slice()
	if err != nil {
		t.Fatal(err)
	}
	var check func(r any)
	check = func(r any) {
		a := r.([]any)
		name := a[0].(string)
		i := LookupName(name)
		if i == nil {
			t.Errorf("COMMAND has %q, the table does not", name)
			return
		}
		if got, want := int64(i.Arity()), a[1].(int64); got != want {
			t.Errorf("%s: arity %d, server %d", name, got, want)
		}
		var flags []string
		for _, f := range a[2].([]any) {
			flags = append(flags, f.(string))
		}
		if got, want := i.Flags().String(), strings.Join(flags, " "); !sameWords(got, want) {
			t.Errorf("%s: flags %q, server %q", name, got, want)
		}
		if got, want := [3]int64{int64(i.FirstKey()), int64(i.LastKey()), int64(i.Step())}, [3]int64{a[3].(int64), a[4].(int64), a[5].(int64)}; got != want {
			t.Errorf("%s: first/last/step %v, server %v", name, got, want)
		}
		if got, want := len(i.KeySpecs()), len(a[8].([]any)); got != want {
			t.Errorf("%s: %d key specs, server %d", name, got, want)
		}
		for _, sub := range a[9].([]any) {
			check(sub)
		}
	}
	for _, r := range raw {
		check(r)
	}
}

func sameWords(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// TestGeneratedFileUpToDate runs the generator against the installed
// redis-server and compares its output with the committed table_gen.go
// byte for byte.
func TestGeneratedFileUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the generator")
	}
	redistest.Require(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	s := redistest.Start(t)
	out := filepath.Join(t.TempDir(), "table_gen.go")
	cmd := exec.CommandContext(ctxT(t), goBin, "run", "./internal/gen", "-addr", s.Addr(), "-out", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./internal/gen: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("table_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("table_gen.go is stale against the installed redis-server; run go generate in proxy/command")
	}
}
