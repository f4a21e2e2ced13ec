package migrate

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/router"
)

// Routing the commands of a tail file by the TARGET table.
//
// A tail is what a replica of one source shard received: data commands,
// SELECT, MULTI/EXEC, and the odd PING/REPLCONF. Each data command goes to
// the target that owns its keys' slot. Commands whose keys land on several
// targets are split the way the proxy splits them (DEL, UNLINK, TOUCH,
// EXISTS by key; MSET, MSETNX by key and value); any other such command
// cannot be applied atomically in the new topology and is refused before
// anything is written. Function and script management goes to every
// target; PUBLISH is dropped (replaying a message to the targets'
// subscribers would deliver it a second time, to nobody who asked).

// part is (part of) a command for one target, or for all when target < 0.
type part struct {
	target int
	args   [][]byte
}

type tailRouter struct {
	table  *router.Table
	keyIdx []int
}

func lowerName(b []byte) string {
	if len(b) > 32 {
		return ""
	}
	return strings.ToLower(string(b))
}

// route appends to dst the parts args must be sent as. No parts and no
// error means the command is dropped on purpose.
func (rt *tailRouter) route(args [][]byte, dst []part) ([]part, error) {
	name := lowerName(args[0])
	switch name {
	case "publish", "spublish":
		return dst, nil
	case "function", "script":
		return append(dst, part{target: -1, args: args}), nil
	case "swapdb", "move", "migrate":
		return dst, fmt.Errorf("%s moves data between databases or servers, which a restore into database 0 of the targets cannot reproduce", strings.ToUpper(name))
	case "copy":
		for _, a := range args[min(3, len(args)):] {
			if bytes.EqualFold(a, []byte("db")) {
				return dst, fmt.Errorf("COPY ... DB copies into another database, which a restore into database 0 of the targets cannot reproduce")
			}
		}
	}
	info := command.Lookup(args)
	if info == nil {
		return dst, fmt.Errorf("unknown command %q (a module's?)", clip(args[0], 40))
	}
	var err error
	rt.keyIdx, err = info.Keys(args, rt.keyIdx[:0])
	if err != nil {
		return dst, fmt.Errorf("%s: %v", info.Name(), err)
	}
	if len(rt.keyIdx) == 0 {
		return dst, fmt.Errorf("%s has no key to route it by", strings.ToUpper(info.Name()))
	}
	first := rt.table.ShardOf(args[rt.keyIdx[0]])
	same := true
	for _, i := range rt.keyIdx[1:] {
		if rt.table.ShardOf(args[i]) != first {
			same = false
			break
		}
	}
	if same {
		return append(dst, part{target: first, args: args}), nil
	}
	step := 1
	switch name {
	case "del", "unlink", "touch", "exists":
	case "mset", "msetnx":
		step = 2
	default:
		a, b := rt.table.ShardOf(args[rt.keyIdx[0]]), -1
		for _, i := range rt.keyIdx {
			if s := rt.table.ShardOf(args[i]); s != a {
				b = s
				break
			}
		}
		return dst, fmt.Errorf("%s has keys on targets %s and %s; only DEL, UNLINK, TOUCH, EXISTS, MSET and MSETNX are split across targets",
			strings.ToUpper(info.Name()), rt.table.Addr(a), rt.table.Addr(b))
	}
	// Split: one command per target, keys in their original order.
	byTarget := map[int]int{} // target -> index in dst
	for _, i := range rt.keyIdx {
		t := rt.table.ShardOf(args[i])
		j, ok := byTarget[t]
		if !ok {
			j = len(dst)
			byTarget[t] = j
			dst = append(dst, part{target: t, args: [][]byte{args[0]}})
		}
		dst[j].args = append(dst[j].args, args[i:i+step]...)
	}
	return dst, nil
}
