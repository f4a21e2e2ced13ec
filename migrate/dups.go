package migrate

import (
	"fmt"
	"hash/maphash"
	"slices"

	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot/rdb"
)

// Keys present in more than one source. Every key is written with
// RESTORE REPLACE or MSET, so a key two sources hold ends with the later
// one's value and counts twice in the report: `--from a.rdb,a-copy.rdb`
// reported 10,202 keys written into targets that held 5,101. The
// pre-flight refuses it unless AllowDuplicates says the last source wins.
//
// How, with bounded memory: the scan already counts each source's keys
// per slot (64 KiB a source). Sources that are the shards of one table,
// as a snapshot's are, own disjoint slots, so no slot has keys in two of
// them and the check ends there, at no cost in reading or memory. Only
// the keys of slots shared by two or more sources are compared: each
// source is read again (values skipped) and the 64-bit hash of each such
// key kept in one slice (8 B a key), which is sorted; equal neighbours
// are candidates (a key in two sources, or a hash collision, one chance
// in 2^64 a pair), confirmed by a third read that keeps the candidates'
// names (at most dupExamples of them). When the shared slots hold more
// than dupBatchKeys keys, they are compared in groups of slots, one read
// of the sources sharing them per group, and the check stops at the first
// group with a confirmed duplicate. So memory is at most 8 B x
// dupBatchKeys (64 MiB), and time one read of the sources involved per
// group (two for the group that confirms). Measured by
// BenchmarkDuplicateCheck at its most expensive, two RDBs of 1M small
// keys each (49 MB together) spread over the same slots with no key in
// common: 0.43 to 0.56 s and a peak Go heap of 17 MB (the 2M hashes), on the
// 2-core test machine; a file and its copy are refused after twice that
// read.

// dupBatchKeys bounds the keys whose hashes one group holds.
const dupBatchKeys = 8 << 20

// dupExamples bounds the candidates confirmed by name.
const dupExamples = 100

// slotCounts counts keys per slot, for one source and database.
type slotCounts []uint32

// duplicateCheck looks for keys of database db in more than one of the
// sources not skipped. It returns a pre-flight problem naming how many
// and one of them with its files, or nil.
func duplicateCheck(res *scanResult, skip []bool, db int) error {
	var srcs []*sourceScan
	for i, ss := range res.sources {
		if skip[i] || ss.err != nil || ss.byDB[db] == nil || ss.byDB[db].slots == nil {
			continue
		}
		srcs = append(srcs, ss)
	}
	if len(srcs) < 2 {
		return nil
	}
	// Per slot: how many sources hold keys there, and how many keys.
	var holders [router.NumSlots]uint16
	var keys [router.NumSlots]int64
	for _, ss := range srcs {
		for s, n := range ss.byDB[db].slots {
			if n > 0 {
				holders[s]++
				keys[s] += int64(n)
			}
		}
	}
	var shared []int
	for s := range holders {
		if holders[s] > 1 {
			shared = append(shared, s)
		}
	}
	if len(shared) == 0 {
		return nil
	}
	seed := maphash.MakeSeed()
	var found, checked int64
	var example string
	for len(shared) > 0 {
		// The next group: slots while their keys fit the bound (at
		// least one slot, whatever its size).
		var group [router.NumSlots]bool
		var n int64
		i := 0
		for ; i < len(shared) && (i == 0 || n+keys[shared[i]] <= dupBatchKeys); i++ {
			group[shared[i]] = true
			n += keys[shared[i]]
		}
		shared = shared[i:]
		checked += int64(i)
		cand, err := dupCandidates(srcs, db, res.nowMs, &group, seed, n)
		if err != nil {
			return err
		}
		if len(cand) == 0 {
			continue
		}
		confirmed, ex, err := confirmDuplicates(srcs, db, res.nowMs, &group, seed, cand)
		if err != nil {
			return err
		}
		if confirmed == 0 {
			continue // hash collisions only
		}
		// Candidates beyond the names kept are counted as duplicates:
		// every one confirmed so far was.
		found += int64(len(cand))
		example = ex
		break
	}
	if found == 0 {
		return nil
	}
	scope := ""
	if left := int64(len(shared)); left > 0 {
		scope = fmt.Sprintf(" (at least: counted in %d of the %d slots they share)", checked, checked+left)
	}
	return problemf(ErrDuplicateKeys, "%d keys are in more than one source%s, for example %s: the later source's value would overwrite the earlier one's; give each key once, or allow it with ALLOW-DUPLICATES (--allow-duplicates)",
		found, scope, example)
}

// dupCandidates reads the sources and returns the hashes of the keys in
// the group's slots that occur more than once; n is their number.
func dupCandidates(srcs []*sourceScan, db int, nowMs int64, group *[router.NumSlots]bool, seed maphash.Seed, n int64) (map[uint64]bool, error) {
	hashes := make([]uint64, 0, n)
	for _, ss := range srcs {
		err := eachKey(ss.files, ss.RDB, true, func(e *rdb.Entry) error {
			if e.DB == db && group[router.Slot(e.Key)] && !expiredAt(e, nowMs) {
				hashes = append(hashes, maphash.Bytes(seed, e.Key))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(hashes)
	cand := map[uint64]bool{}
	for i := 1; i < len(hashes); i++ {
		if hashes[i] == hashes[i-1] {
			cand[hashes[i]] = true
		}
	}
	return cand, nil
}

// confirmDuplicates reads the sources again for the names behind up to
// dupExamples candidate hashes and returns how many are keys of two
// sources, and the first as an example.
func confirmDuplicates(srcs []*sourceScan, db int, nowMs int64, group *[router.NumSlots]bool, seed maphash.Seed, cand map[uint64]bool) (int, string, error) {
	keep := map[uint64]bool{}
	for h := range cand {
		if len(keep) == dupExamples {
			break
		}
		keep[h] = true
	}
	type seen struct{ key, file string }
	names := map[uint64][]seen{}
	confirmed := 0
	example := ""
	for _, ss := range srcs {
		err := eachKey(ss.files, ss.RDB, true, func(e *rdb.Entry) error {
			if e.DB != db || !group[router.Slot(e.Key)] || expiredAt(e, nowMs) {
				return nil
			}
			h := maphash.Bytes(seed, e.Key)
			if !keep[h] {
				return nil
			}
			for _, s := range names[h] {
				if s.key == string(e.Key) && s.file != ss.RDB {
					confirmed++
					if example == "" {
						example = fmt.Sprintf("%q in %s and %s", e.Key, s.file, ss.RDB)
					}
					return nil
				}
			}
			names[h] = append(names[h], seen{string(e.Key), ss.RDB})
			return nil
		})
		if err != nil {
			return 0, "", err
		}
	}
	return confirmed, example, nil
}

// expiredAt says whether a key had expired at nowMs (the restore skips it).
func expiredAt(e *rdb.Entry, nowMs int64) bool {
	return e.ExpireMs >= 0 && e.ExpireMs <= nowMs
}

// lastHolders is, per slot, the index (in res.sources) of the last source
// restored that holds keys of db there, -1 for none. A key of another
// source in such a slot may have been overwritten by it (AllowDuplicates):
// Verify does not compare those.
func lastHolders(res *scanResult, skip []bool, db int) *[router.NumSlots]int16 {
	var last [router.NumSlots]int16
	for s := range last {
		last[s] = -1
	}
	for i, ss := range res.sources {
		if skip[i] || ss.byDB[db] == nil {
			continue
		}
		for s, n := range ss.byDB[db].slots {
			if n > 0 {
				last[s] = int16(i)
			}
		}
	}
	return &last
}
