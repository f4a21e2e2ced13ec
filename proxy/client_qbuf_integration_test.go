package proxy_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proxytest"
)

// CLIENT LIST and CLIENT INFO show qbuf, qbuf-free, argv-mem and tot-mem
// in Redis's places, from the client's read buffer in the proxy: the
// asking client's own command in qbuf (26 bytes for CLIENT INFO, as in
// Redis), nothing for an idle client, a big argument still arriving in
// qbuf and tot-mem.
func TestIntegrationClientQueryBuffer(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	num := func(vals map[string]string, k string) int64 {
		t.Helper()
		n, err := strconv.ParseInt(vals[k], 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", k, vals[k], err)
		}
		return n
	}
	line := func(name string) (names []string, vals map[string]string) {
		t.Helper()
		out, err := c.Client().ClientList(t.Context()).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, " name="+name+" ") {
				return clientFields(t, l)
			}
		}
		t.Fatalf("no client %s in CLIENT LIST: %s", name, out)
		return nil, nil
	}

	self := dialRaw(t, c.Addr)
	vals := ownInfo(t, self)
	if q, free := num(vals, "qbuf"), num(vals, "qbuf-free"); q != 26 || q+free < 16384 {
		t.Errorf("CLIENT INFO: qbuf=%d qbuf-free=%d, want qbuf=26 (its own command) in a buffer of at least 16384", q, free)
	}
	if argv, tot := num(vals, "argv-mem"), num(vals, "tot-mem"); argv <= 0 || tot < 16384+argv {
		t.Errorf("CLIENT INFO: argv-mem=%d tot-mem=%d, want argv-mem > 0 and tot-mem counting the buffer and it", argv, tot)
	}

	idle := dialRaw(t, c.Addr)
	idle.do("CLIENT", "SETNAME", "idle")
	names, vals := line("idle")
	if q, argv, free := num(vals, "qbuf"), num(vals, "argv-mem"), num(vals, "qbuf-free"); q != 0 || argv != 0 || free < 16384 {
		t.Errorf("idle client: qbuf=%d argv-mem=%d qbuf-free=%d, want 0, 0 and a free buffer", q, argv, free)
	}
	var order []string
	for _, n := range names {
		switch n {
		case "multi", "qbuf", "qbuf-free", "argv-mem", "omem", "tot-mem", "cmd":
			order = append(order, n)
		}
	}
	if got, want := strings.Join(order, " "), "multi qbuf qbuf-free argv-mem omem tot-mem cmd"; got != want {
		t.Errorf("CLIENT LIST fields in the order %s, want Redis's %s", got, want)
	}

	// a SET whose value is still arriving
	big := dialRaw(t, c.Addr)
	big.do("CLIENT", "SETNAME", "big")
	big.write("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$200000\r\n" + strings.Repeat("A", 100000))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, vals = line("big")
		if num(vals, "qbuf") >= 100000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client sending 100000 bytes of a value: qbuf=%s, want them all", vals["qbuf"])
		}
	}
	if tot := num(vals, "tot-mem"); tot < 200000 {
		t.Errorf("client sending a 200000-byte value: tot-mem=%d, want the buffer grown for it", tot)
	}
	big.write(strings.Repeat("A", 100000) + "\r\n")
	if got := render(big.read()); got != "+OK" {
		t.Fatalf("SET big = %s", got)
	}
}
