package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reshard/reshard/internal/redistest"
)

// The README's walkthrough is executed here, so that it cannot drift from
// the code: every ```sh block of its "## Walkthrough" section runs, in
// order, in one bash, in a fresh copy of the repository, and what each
// command prints must match the lines the README shows under it.
//
// The README's notation, which a reader takes in at a glance:
//
//	$ command               a command (a line ending in \ continues it)
//	output line             what it prints, compared line by line
//	...T...Z-...            "..." inside a line stands for any text (ids, times)
//	...                     a line of its own stands for any lines, or none
//
// Runs of blanks compare as one blank and blank lines are left out, so
// column widths that follow a figure do not matter. A command with no
// lines under it must print nothing.
//
// The commands run as a reader's would in a terminal: bash with job
// control (so `make run ... &` is job %1 and `kill -INT %1` is the Ctrl-C
// of that job) and its output on a pseudo-terminal, so that redis-cli
// prints what the reader sees (`1) "a"`, `(error) ...`, `(integer) 2`)
// rather than its raw form for pipes.

// readmePorts are the fixed ports the walkthrough shows: the proxy's
// (make run's default listen address) and the five new shards'. Fixed
// ports make a README readable, but `make test` must not fail because a
// developer's own `make run` holds 6380. So each is mapped to a free port
// (quietPort), as a whole word, in the commands, and mapped back in their
// output before it is compared; make run gets the proxy's through LISTEN,
// which the Makefile takes from the environment. Nothing else is
// rewritten.
var readmePorts = []string{"6380", "7101", "7102", "7103", "7104", "7105"}

// stepTimeout bounds one command: the first one waits for make run to
// build the binary, which on a cold build cache and a busy machine takes
// minutes; the walkthrough's other commands take seconds. A command that
// hangs (an `until` whose condition never comes) fails the test after it.
const stepTimeout = 3 * time.Minute

type walkStep struct {
	line int      // README line of the command
	cmd  string   // the command, continuation lines included
	want []string // the lines the README shows under it
}

// walkthroughSteps extracts the commands and their expected output from
// the ```sh blocks of the README's "## Walkthrough" section.
func walkthroughSteps(readme string) ([]walkStep, error) {
	var steps []walkStep
	inSection, inBlock, continued := false, false, false
	for i, l := range strings.Split(readme, "\n") {
		n := i + 1
		switch {
		case strings.HasPrefix(l, "## "):
			inSection = strings.HasPrefix(l, "## Walkthrough")
			continue
		case !inSection:
			continue
		case !inBlock:
			inBlock = l == "```sh"
			continue
		case l == "```":
			if continued {
				return nil, fmt.Errorf("README.md:%d: the block ends inside a command", n)
			}
			inBlock = false
			continue
		}
		switch {
		case continued:
			steps[len(steps)-1].cmd += "\n" + l
		case strings.HasPrefix(l, "$ "):
			steps = append(steps, walkStep{line: n, cmd: strings.TrimPrefix(l, "$ ")})
		case len(steps) == 0:
			return nil, fmt.Errorf("README.md:%d: output before the first command", n)
		default:
			s := &steps[len(steps)-1]
			s.want = append(s.want, l)
			continue
		}
		continued = strings.HasSuffix(l, `\`)
	}
	if len(steps) == 0 {
		return nil, errors.New("README.md: no ```sh block with $ commands under ## Walkthrough")
	}
	return steps, nil
}

// normalize turns a command's output into the lines compared: carriage
// returns dropped, runs of blanks made one, blank lines left out.
func normalize(text string) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(text, "\r", ""), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			out = append(out, strings.Join(f, " "))
		}
	}
	return out
}

// matchLines reports whether got matches want, where a want line "..."
// stands for any number of lines.
func matchLines(want, got []string) bool {
	switch {
	case len(want) == 0:
		return len(got) == 0
	case want[0] == "...":
		for i := 0; i <= len(got); i++ {
			if matchLines(want[1:], got[i:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && matchLine(want[0], got[0]) && matchLines(want[1:], got[1:])
}

// matchLine reports whether got matches want, where "..." in want stands
// for any text.
func matchLine(want, got string) bool {
	parts := strings.Split(want, "...")
	if len(parts) == 1 {
		return want == got
	}
	if !strings.HasPrefix(got, parts[0]) {
		return false
	}
	rest := got[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
	}
	return strings.HasSuffix(rest, parts[len(parts)-1])
}

// openPTY returns a new pseudo-terminal's two ends, the terminal's set not
// to echo and not to turn "\n" into "\r\n".
func openPTY() (ptm, pts *os.File, err error) {
	ptm, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(ptm.Fd())
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err == nil {
		err = unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0)
	}
	if err == nil {
		pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	}
	if err == nil {
		var tio *unix.Termios
		if tio, err = unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS); err == nil {
			tio.Lflag &^= unix.ECHO
			tio.Oflag &^= unix.ONLCR
			err = unix.IoctlSetTermios(int(pts.Fd()), unix.TCSETS, tio)
		}
	}
	if err != nil {
		ptm.Close()
		if pts != nil {
			pts.Close()
		}
		return nil, nil, fmt.Errorf("pseudo-terminal: %w", err)
	}
	return ptm, pts, nil
}

// wordReplacer replaces whole words (numbers here) by others.
func wordReplacer(m map[string]string) func(string) string {
	var alts []string
	for k := range m {
		alts = append(alts, regexp.QuoteMeta(k))
	}
	re := regexp.MustCompile(`\b(` + strings.Join(alts, "|") + `)\b`)
	return func(s string) string { return re.ReplaceAllStringFunc(s, func(w string) string { return m[w] }) }
}

// walkMarker follows every command: the step's number and exit status.
var walkMarker = regexp.MustCompile("\n?\x1ewalkthrough step ([0-9]+) exit ([0-9]+)\x1e\n")

// TestReadmeWalkthrough runs the README's walkthrough: make run, a
// redis-cli tour, BGSAVE, reshard inspect, reshard restore into five
// shards, a live PROXY RESHARD onto them and the rollback, then Ctrl-C.
// Every embedded shard and every redis-server the README started must be
// gone at the end.
func TestReadmeWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the whole walkthrough")
	}
	redistest.Require(t)
	for _, tool := range []string{"bash", "make", "redis-cli", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's walkthrough needs %s: %v", tool, err)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := walkthroughSteps(string(readme))
	if err != nil {
		t.Fatal(err)
	}

	fwd, back := map[string]string{}, map[string]string{}
	var all strings.Builder
	for _, s := range steps {
		all.WriteString(s.cmd + "\n")
	}
	for _, p := range readmePorts {
		if !regexp.MustCompile(`\b` + p + `\b`).MatchString(all.String()) {
			t.Fatalf("port %s is not in the walkthrough's commands: update readmePorts", p)
		}
		free, err := quietPort(back)
		if err != nil {
			t.Fatal(err)
		}
		fwd[p], back[free] = free, p
	}
	toTest, toReadme := wordReplacer(fwd), wordReplacer(back)

	dir := freshCopyDir(t)
	copyRepoTo(t, dir)
	var script strings.Builder
	script.WriteString("set -m\n") // job control, as in an interactive shell
	for i, s := range steps {
		fmt.Fprintf(&script, "%s\nprintf '\\n\\036walkthrough step %d exit %%d\\036\\n' $?\n", toTest(s.cmd), i)
	}
	scriptPath := filepath.Join(t.TempDir(), "walkthrough.sh")
	if err := os.WriteFile(scriptPath, []byte(script.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	ptm, pts, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer ptm.Close()
	cmd := exec.Command("bash", "--noprofile", "--norc", scriptPath)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), "LISTEN=127.0.0.1:"+fwd["6380"])
	cmd.Stdout, cmd.Stderr = pts, pts
	// A session of its own with the terminal as its controlling one, which
	// job control needs; Ctty is the child's stdout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 1}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	var waitErr error
	exited := make(chan struct{}) // closed once bash has exited, waitErr set
	go func() { waitErr = cmd.Wait(); close(exited) }()

	var out syncBuffer
	go io.Copy(&out, ptm) // ends with EIO once every holder of the terminal is gone

	// Whatever happens, nothing the walkthrough started outlives the test.
	seen := map[int]string{} // pid -> what it is, for every shard seen running
	t.Cleanup(func() { stopWalkthrough(t, dir, cmd, exited, seen) })

	consumed, embedded := 0, 0
	for i, s := range steps {
		var text, status string
		began := time.Now()
		deadline := began.Add(stepTimeout)
		for {
			o := out.String()[consumed:]
			if m := walkMarker.FindStringSubmatchIndex(o); m != nil {
				if n, _ := strconv.Atoi(o[m[2]:m[3]]); n != i {
					t.Fatalf("README.md:%d: output of step %d where step %d's was due", s.line, n, i)
				}
				text, status, consumed = o[:m[0]], o[m[4]:m[5]], consumed+m[1]
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("README.md:%d: `%s` did not finish within %v; its output so far:\n%s\n%s",
					s.line, s.cmd, stepTimeout, o, logTails(dir))
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("README.md:%d: %v", s.line, time.Since(began).Round(time.Millisecond))
		for _, pid := range shardPIDs(t, filepath.Join(dir, ".reshard")) {
			if _, ok := seen[pid]; !ok {
				seen[pid] = "embedded shard"
				embedded++
			}
		}
		for _, pid := range readmePIDs(dir) {
			seen[pid] = "redis-server started by the README"
		}
		got := normalize(toReadme(text))
		if want := normalize(strings.Join(s.want, "\n")); !matchLines(want, got) {
			t.Errorf("README.md:%d: `%s` printed (exit status %s)\n\t%s\nwhere the README shows\n\t%s",
				s.line, s.cmd, status, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("bash: %v", waitErr)
		}
	case <-time.After(stepTimeout):
		t.Fatal("bash did not exit after the walkthrough's last command")
	}
	if embedded == 0 {
		// Then the check below proves nothing about Ctrl-C.
		t.Errorf("no embedded shard seen running (pid files under .reshard/embedded moved?)")
	}
	for pid, what := range seen {
		if !gone(pid, 10*time.Second) {
			t.Errorf("%s (pid %d) still runs after the walkthrough", what, pid)
		}
	}
	if t.Failed() {
		t.Log(logTails(dir))
	}
}

// quietPort returns a free loopback port below the kernel's ephemeral
// range, and not in taken. The walkthrough's ports are chosen seconds
// before its commands bind them, and meanwhile the tests that run
// alongside bind port 0 and open connections by the hundred, all of them
// on ports from the ephemeral range; below it, only a fixed port could
// take one.
func quietPort(taken map[string]string) (string, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				low = n
			}
		}
	}
	for range 1000 {
		port := strconv.Itoa(low - 10000 + rand.IntN(10000))
		if _, ok := taken[port]; ok {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	return "", fmt.Errorf("no free port below %d", low)
}

// freshCopyDir returns an empty directory for a copy of the repository
// (the walkthrough's, TestMakeRun's), removed when the test ends. Its path
// is the same at every run from one checkout, not a new temporary one,
// because Go's build cache keys a package compiled without -trimpath by
// its directory: in a new directory every run compiles the whole module again for make run (15 to
// 45 s on the 2-core machine), in the same one only what changed. A lock
// keeps two runs from one checkout apart.
func freshCopyDir(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), "reshard-fresh-copy-"+hex.EncodeToString(sum[:6]))
	lock, err := os.OpenFile(dir+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// cleanEnv is the test's environment without what would change make
// run's defaults or make it a sub-make: a newcomer's shell has none of
// these.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "LISTEN", "STATE_DIR", "MAKEFLAGS", "MAKELEVEL", "MFLAGS":
		default:
			env = append(env, kv)
		}
	}
	return env
}

// readmePIDs reads the pid files the README's redis-server commands write
// at the top of the repository.
func readmePIDs(dir string) []int { return pidFiles(filepath.Join(dir, "*.pid")) }

// gone waits up to d for process pid to exit.
func gone(pid int, d time.Duration) bool {
	for deadline := time.Now().Add(d); alive(pid); {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// stopWalkthrough stops what a walkthrough that failed midway left
// running: the proxy as Ctrl-C would (it stops its embedded shards), then
// by force whatever remains of it, of the shards and of bash.
func stopWalkthrough(t *testing.T, dir string, cmd *exec.Cmd, exited <-chan struct{}, seen map[int]string) {
	if b, err := os.ReadFile(filepath.Join(dir, ".reshard", "lock")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && alive(pid) {
			syscall.Kill(pid, syscall.SIGINT)
			if !gone(pid, 15*time.Second) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, pid := range append(shardPIDs(t, filepath.Join(dir, ".reshard")), readmePIDs(dir)...) {
		seen[pid] = "shard"
	}
	for pid := range seen {
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			gone(pid, 5*time.Second)
		}
	}
	select {
	case <-exited:
	default:
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // bash's session, its process group
		<-exited
	}
}

// logTails is the end of every log the walkthrough wrote, for a failure.
func logTails(dir string) string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var b bytes.Buffer
	for _, f := range files {
		data, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		fmt.Fprintf(&b, "--- %s (last lines)\n%s\n", filepath.Base(f), strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
	return b.String()
}

func TestWalkthroughNotation(t *testing.T) {
	lines := []struct {
		want, got string
		ok        bool
	}{
		{"OK", "OK", true},
		{"OK", "OKAY", false},
		{"id:...T...Z-...", "id:20261207T025458Z-9dd5", true},
		{"id:...T...Z-...", "id:20261207-9dd5", false},
		{"127.0.0.1:...=0-5460", "127.0.0.1:44587=0-5460", true},
		{"127.0.0.1:...=0-5460", "127.0.0.1:44587=0-5461", false},
		{"Waiting for the last reply...", "Waiting for the last reply...", true},
		{"...", "", true},
	}
	for _, tt := range lines {
		if got := matchLine(tt.want, tt.got); got != tt.ok {
			t.Errorf("matchLine(%q, %q) = %v, want %v", tt.want, tt.got, got, tt.ok)
		}
	}

	blocks := []struct {
		want, got []string
		ok        bool
	}{
		{nil, nil, true},
		{nil, []string{"x"}, false},
		{[]string{"..."}, nil, true},
		{[]string{"a", "...", "d"}, []string{"a", "b", "c", "d"}, true},
		{[]string{"a", "...", "d"}, []string{"a", "d"}, true},
		{[]string{"a", "...", "d"}, []string{"a", "b"}, false},
		{[]string{"...", "k:..."}, []string{"x", "k:1"}, true},
	}
	for _, tt := range blocks {
		if got := matchLines(tt.want, tt.got); got != tt.ok {
			t.Errorf("matchLines(%q, %q) = %v, want %v", tt.want, tt.got, got, tt.ok)
		}
	}

	if got, want := normalize("a  b\r\n\n\tc \n"), []string{"a b", "c"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("normalize = %q, want %q", got, want)
	}

	readme := "# x\n```sh\n$ not run\n```\n## Walkthrough\ntext\n```\n$ not sh\n```\n```sh\n$ echo a \\\n    b\na b\n$ true\n```\n## Next\n```sh\n$ not run\n```\n"
	steps, err := walkthroughSteps(readme)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%+v", steps)
	if want := "[{line:11 cmd:echo a \\\n    b want:[a b]} {line:14 cmd:true want:[]}]"; got != want {
		t.Errorf("walkthroughSteps = %s, want %s", got, want)
	}
	if _, err := walkthroughSteps("## Walkthrough\n```sh\noutput\n```\n"); err == nil {
		t.Error("output before any command is accepted")
	}
}
