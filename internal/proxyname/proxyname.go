package proxyname

import (
	"bytes"
	"slices"
	"strings"
)

// Prefix begins the name of every proxy's shard connection.
const Prefix = "reshard-proxy-"

// Name is the connection name of the proxy whose run id is runID.
func Name(runID string) string { return Prefix + runID }

// Conn is one proxy's connection as a shard's CLIENT LIST shows it.
type Conn struct {
	Shard string // the shard's address, as the caller knows it
	RunID string // the proxy's run id
	From  string // the connection's address as the shard sees it (addr=)
	ID    string // the shard's client id of the connection (id=)
}

// In returns the connections of proxies other than self in the text of a
// CLIENT LIST reply from shard, one per proxy (the first listed). An
// empty self excludes none.
func In(list []byte, shard, self string) []Conn {
	var out []Conn
	for line := range bytes.Lines(list) {
		var name, from, id string
		for _, f := range strings.Fields(string(line)) {
			if v, ok := strings.CutPrefix(f, "name="); ok {
				name = v
			} else if v, ok := strings.CutPrefix(f, "addr="); ok {
				from = v
			} else if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			}
		}
		run, ok := strings.CutPrefix(name, Prefix)
		if !ok || run == "" || (self != "" && run == self) || slices.ContainsFunc(out, func(c Conn) bool { return c.RunID == run }) {
			continue
		}
		out = append(out, Conn{Shard: shard, RunID: run, From: from, ID: id})
	}
	return out
}
