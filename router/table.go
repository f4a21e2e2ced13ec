package router

import (
	"fmt"
	"sync/atomic"
)

// Table is an immutable slot -> shard assignment. Build one with NewTable;
// never modify it after it has been published.
type Table struct {
	epoch  uint64
	shards []string // shard addresses, index = shard id
	slots  [NumSlots]uint16
}

// Range is an inclusive slot range.
type Range struct{ From, To uint16 }

// Shard is one entry of a topology: an address and the slot ranges it owns.
type Shard struct {
	Addr   string
	Ranges []Range
}

// NewTable builds a table from shards whose ranges cover every slot exactly
// once. The error names the first slot that is missing or owned twice.
func NewTable(epoch uint64, shards []Shard) (*Table, error) {
	if len(shards) == 0 {
		return nil, fmt.Errorf("router: no shards")
	}
	if len(shards) > 1<<16-1 {
		return nil, fmt.Errorf("router: too many shards (%d)", len(shards))
	}
	t := &Table{epoch: epoch, shards: make([]string, len(shards))}
	const unowned = 1<<16 - 1
	for i := range t.slots {
		t.slots[i] = unowned
	}
	seen := make(map[string]bool, len(shards))
	for i, sh := range shards {
		if sh.Addr == "" {
			return nil, fmt.Errorf("router: shard %d has no address", i)
		}
		if seen[sh.Addr] {
			return nil, fmt.Errorf("router: shard %s listed twice", sh.Addr)
		}
		seen[sh.Addr] = true
		t.shards[i] = sh.Addr
		for _, r := range sh.Ranges {
			if r.From > r.To || r.To >= NumSlots {
				return nil, fmt.Errorf("router: shard %s: bad slot range %d-%d", sh.Addr, r.From, r.To)
			}
			for s := int(r.From); s <= int(r.To); s++ {
				if t.slots[s] != unowned {
					return nil, fmt.Errorf("router: slot %d is owned twice (%s and %s)", s, t.shards[t.slots[s]], sh.Addr)
				}
				t.slots[s] = uint16(i)
			}
		}
	}
	for s, owner := range t.slots {
		if owner == unowned {
			return nil, fmt.Errorf("router: slot %d is not owned by any shard", s)
		}
	}
	return t, nil
}

// Epoch is the table's version; it grows by one on every change.
func (t *Table) Epoch() uint64 { return t.epoch }

// NumShards is the number of shards in the table.
func (t *Table) NumShards() int { return len(t.shards) }

// Addr returns the address of shard i.
func (t *Table) Addr(i int) string { return t.shards[i] }

// Addrs returns a copy of the shard addresses.
func (t *Table) Addrs() []string { return append([]string(nil), t.shards...) }

// ShardOfSlot returns the shard index that owns slot.
func (t *Table) ShardOfSlot(slot uint16) int { return int(t.slots[slot]) }

// ShardOf returns the shard index that owns key.
func (t *Table) ShardOf(key []byte) int { return int(t.slots[Slot(key)]) }

// Shards returns the topology as shard entries with merged slot ranges.
func (t *Table) Shards() []Shard {
	out := make([]Shard, len(t.shards))
	for i, a := range t.shards {
		out[i].Addr = a
	}
	start := 0
	for s := 1; s <= NumSlots; s++ {
		if s == NumSlots || t.slots[s] != t.slots[start] {
			o := t.slots[start]
			out[o].Ranges = append(out[o].Ranges, Range{uint16(start), uint16(s - 1)})
			start = s
		}
	}
	return out
}

// Holder publishes the current table to concurrent readers.
type Holder struct{ p atomic.Pointer[Table] }

// NewHolder returns a holder that publishes t.
func NewHolder(t *Table) *Holder {
	h := &Holder{}
	h.p.Store(t)
	return h
}

// Load returns the current table.
func (h *Holder) Load() *Table { return h.p.Load() }

// Store publishes t.
func (h *Holder) Store(t *Table) { h.p.Store(t) }
