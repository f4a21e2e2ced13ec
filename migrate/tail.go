package migrate

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/reshard/reshard/internal/resp"
)

// applyTail replays a source's tail file on the targets, routed by the
// target table (route.go). It runs after the source's RDB has been written
// and every reply read, over the first connection of each target, so the
// commands of a tail apply in their order. A MULTI/EXEC block is applied as
// one transaction per target it touches: atomic on each target, not across
// targets (the keys of one slot stay together, which is what a later
// reshard needs). Commands before the last FLUSHALL (or FLUSHDB of the
// restored database) are skipped: the source's data they wrote was wiped,
// and so the RDB of that source was not restored either. Commands in other
// databases are skipped and counted.
func (j *job) applyTail(ctx context.Context, ss *sourceScan) error {
	from, _ := ss.tail.flushOffset(j.db)
	f, err := ss.files.open(ss.Tail)
	if err != nil {
		return sourceError(ss.Tail, err)
	}
	defer f.Close()
	cr := resp.NewCommandReader(bufio.NewReaderSize(f, 64<<10), tailLimits)
	rt := &tailRouter{table: j.table}
	db := 0
	inMulti := false
	var tx []part // a transaction's parts, cloned (the reader reuses args)
	for n := 0; ; n++ {
		off := cr.Offset()
		args, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return &wrapped{sentinel: ErrBadSource, cause: err, msg: fmt.Sprintf("tail %s: %v", ss.Tail, err)}
		}
		if n&255 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		switch lowerName(args[0]) {
		case "ping", "replconf", "flushall", "flushdb":
			// FLUSH*: handled through from (see above).
			continue
		case "select":
			db, _ = strconv.Atoi(string(args[1]))
			continue
		case "multi":
			inMulti, tx = true, tx[:0]
			continue
		case "exec":
			inMulti = false
			if err := j.sendTx(ctx, tx); err != nil {
				return err
			}
			continue
		}
		if off < from {
			continue
		}
		if db != j.db {
			j.rep.OtherDBCommands++
			continue
		}
		j.parts, err = rt.route(args, j.parts[:0])
		if err != nil {
			return &wrapped{sentinel: ErrUnroutable, cause: err, msg: fmt.Sprintf("tail %s at offset %d: %v", ss.Tail, off, err)}
		}
		if len(j.parts) == 0 {
			j.rep.Dropped++
			continue
		}
		if j.tailKeys != nil {
			for _, i := range rt.keyIdx {
				j.tailKeys[string(args[i])] = true
			}
		}
		for _, p := range j.parts {
			if inMulti {
				tx = append(tx, part{target: p.target, args: cloneArgs(p.args)})
				continue
			}
			if err := j.sendPart(ctx, p, opTail); err != nil {
				return err
			}
		}
	}
	return nil
}

func cloneArgs(args [][]byte) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = bytes.Clone(a)
	}
	return out
}

// sendPart sends a command to its target, or to every target.
func (j *job) sendPart(ctx context.Context, p part, o op) error {
	for _, t := range j.targets {
		if p.target >= 0 && t.idx != p.target {
			continue
		}
		args := p.args
		err := t.pipes[0].send(ctx, pending{op: o, key: fmt.Sprintf("%q", clip(bytes.Join(args, []byte(" ")), 80))}, func(b []byte) []byte {
			return resp.AppendCommand(b, args...)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// sendTx sends a transaction's parts as one MULTI/EXEC per target, in the
// order of the targets' first appearance.
func (j *job) sendTx(ctx context.Context, tx []part) error {
	var order []int
	seen := map[int]bool{}
	for _, p := range tx {
		ts := []int{p.target}
		if p.target < 0 {
			ts = ts[:0]
			for _, t := range j.targets {
				ts = append(ts, t.idx)
			}
		}
		for _, t := range ts {
			if !seen[t] {
				seen[t] = true
				order = append(order, t)
			}
		}
	}
	for _, ti := range order {
		multi := part{target: ti, args: [][]byte{[]byte("MULTI")}}
		if err := j.sendPart(ctx, multi, opTx); err != nil {
			return err
		}
		for _, p := range tx {
			if p.target == ti || p.target < 0 {
				if err := j.sendPart(ctx, part{target: ti, args: p.args}, opTail); err != nil {
					return err
				}
			}
		}
		if err := j.sendPart(ctx, part{target: ti, args: [][]byte{[]byte("EXEC")}}, opTx); err != nil {
			return err
		}
	}
	return nil
}
