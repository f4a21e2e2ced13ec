package proxy

import (
	"reflect"
	"testing"
)

func TestPeersIn(t *testing.T) {
	list := []byte("id=3 addr=10.0.0.2:5100 laddr=10.0.0.9:7001 fd=8 name=reshard-proxy-bbb age=1 cmd=get\n" +
		"id=4 addr=127.0.0.1:5200 laddr=127.0.0.1:7001 fd=9 name=reshard-proxy-aaa age=1 cmd=get\n" +
		"id=5 addr=10.0.0.2:5101 laddr=10.0.0.9:7001 fd=10 name=reshard-proxy-bbb age=1 cmd=set\n" +
		"id=6 addr=10.0.0.3:5300 laddr=10.0.0.9:7001 fd=11 name= age=1 cmd=client|list\n" +
		"id=7 addr=10.0.0.4:5400 laddr=10.0.0.9:7001 fd=12 name=myapp age=1 cmd=get\n" +
		"id=8 addr=10.0.0.5:5500 laddr=10.0.0.9:7001 fd=13 name=reshard-proxy-ccc age=1 cmd=get\n")
	got := peersIn(list, "10.0.0.9:7001", "aaa")
	want := []peer{
		{shard: "10.0.0.9:7001", runID: "bbb", from: "10.0.0.2:5100"},
		{shard: "10.0.0.9:7001", runID: "ccc", from: "10.0.0.5:5500"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("peersIn = %+v, want %+v", got, want)
	}
	if got := peersIn(list, "x", "bbb"); len(got) != 2 || got[0].runID != "aaa" {
		t.Errorf("seen from bbb: %+v", got)
	}
}
