package proxyname

import (
	"reflect"
	"testing"
)

func TestIn(t *testing.T) {
	list := []byte("id=3 addr=10.0.0.2:5100 laddr=10.0.0.9:7001 fd=8 name=reshard-proxy-bbb age=1 cmd=get\n" +
		"id=4 addr=127.0.0.1:5200 laddr=127.0.0.1:7001 fd=9 name=reshard-proxy-aaa age=1 cmd=get\n" +
		"id=5 addr=10.0.0.2:5101 laddr=10.0.0.9:7001 fd=10 name=reshard-proxy-bbb age=1 cmd=set\n" +
		"id=6 addr=10.0.0.3:5300 laddr=10.0.0.9:7001 fd=11 name= age=1 cmd=client|list\n" +
		"id=7 addr=10.0.0.4:5400 laddr=10.0.0.9:7001 fd=12 name=myapp age=1 cmd=get\n" +
		"id=8 addr=10.0.0.5:5500 laddr=10.0.0.9:7001 fd=13 name=reshard-proxy-ccc age=1 cmd=get\n" +
		"id=9 addr=10.0.0.6:5600 laddr=10.0.0.9:7001 fd=14 name=reshard-proxy- age=1 cmd=get\n")
	for _, tc := range []struct {
		self string
		want []Conn
	}{
		{"aaa", []Conn{
			{Shard: "s", RunID: "bbb", From: "10.0.0.2:5100", ID: "3"},
			{Shard: "s", RunID: "ccc", From: "10.0.0.5:5500", ID: "8"},
		}},
		{"", []Conn{
			{Shard: "s", RunID: "bbb", From: "10.0.0.2:5100", ID: "3"},
			{Shard: "s", RunID: "aaa", From: "127.0.0.1:5200", ID: "4"},
			{Shard: "s", RunID: "ccc", From: "10.0.0.5:5500", ID: "8"},
		}},
	} {
		if got := In(list, "s", tc.self); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("In(self %q) = %+v, want %+v", tc.self, got, tc.want)
		}
	}
}
