package proxy

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// A command's arguments as the proxy logs them (loggedArgs) are Redis's
// form, and a request matches the entry a shard logged of it (loggedAs).
func TestSlowlogArgs(t *testing.T) {
	many := [][]byte{[]byte("SADD"), []byte("s")}
	for i := range 40 {
		many = append(many, []byte(strconv.Itoa(i)))
	}
	long := bytes.Repeat([]byte("x"), 130)
	for _, tc := range []struct {
		args [][]byte
		want string
	}{
		{[][]byte{[]byte("PING")}, "PING"},
		{many, "SADD s 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 ... (11 more arguments)"},
		{[][]byte{[]byte("ECHO"), long}, "ECHO " + string(long[:128]) + "... (2 more bytes)"},
		{[][]byte{[]byte("AUTH"), []byte("user"), []byte("pw")}, "AUTH (redacted) (redacted)"},
		{[][]byte{[]byte("HELLO"), []byte("3"), []byte("AUTH"), []byte("u"), []byte("p"), []byte("SETNAME"), []byte("n")}, "HELLO 3 AUTH (redacted) (redacted) SETNAME n"},
	} {
		got := loggedArgs(command.Lookup(tc.args), tc.args)
		if s := string(bytes.Join(got, []byte(" "))); s != tc.want {
			t.Errorf("loggedArgs(%.40q) = %q, want %q", tc.args, s, tc.want)
		}
		cmd, _ := wire.ArrayElems(resp.AppendCommand(nil, tc.args...), nil)
		if !loggedAs(cmd, got) {
			t.Errorf("request %.40q does not match its entry %q", tc.args, got)
		}
	}
	cmd, _ := wire.ArrayElems(resp.AppendCommand(nil, []byte("SET"), []byte("a"), []byte("1")), nil)
	if loggedAs(cmd, [][]byte{[]byte("SET"), []byte("a"), []byte("2")}) {
		t.Error("SET a 1 matches an entry SET a 2")
	}
}

// The witnesses keep the latest pipelines within their bounds.
func TestSlowWitnessesBounds(t *testing.T) {
	var ws slowWitnesses
	for i := range 3 * maxWitnesses {
		ws.add(slowWitness{raw: []byte("x"), name: strconv.Itoa(i)})
	}
	held := ws.snapshot()
	if len(held) != maxWitnesses || held[len(held)-1].name != strconv.Itoa(3*maxWitnesses-1) {
		t.Fatalf("%d held, the newest %q; want %d, the newest added", len(held), held[len(held)-1].name, maxWitnesses)
	}
	big := []byte(strings.Repeat("y", maxWitnessStage))
	for range 2 * maxWitnessBytes / maxWitnessStage {
		ws.add(slowWitness{raw: big})
	}
	total := 0
	for _, w := range ws.snapshot() {
		total += len(w.raw)
	}
	if total > maxWitnessBytes || ws.bytes != total {
		t.Errorf("%d bytes held (counted %d), want at most %d", total, ws.bytes, maxWitnessBytes)
	}
}
