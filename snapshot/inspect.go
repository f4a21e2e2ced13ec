package snapshot

import (
	"bufio"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot/objstore"
	"github.com/reshard/reshard/snapshot/rdb"
)

// InspectConfig says what Inspect reports beyond the totals.
type InspectConfig struct {
	// Top is how many of the largest keys to list; 0 lists none.
	Top int
	// Target, when set, is a topology (router.ParseSpec) whose slot
	// ranges the keys are counted in: where a restore would send them.
	// Without it, a snapshot's keys are counted in its own table's
	// ranges, and a plain RDB's are not counted per range.
	Target []router.Shard
	// S3 reads a path given as an s3:// URL: a snapshot's prefix, or an
	// object whose name ends in .rdb.
	S3 *objstore.Client
	// Prefixes is how many of the key prefixes holding the most bytes to
	// list (prefixTop); 0 lists none.
	Prefixes int
	// Weigh, when set, gives each key a weight summed per slot into
	// Report.SlotWeights (reshard plan --by memory passes the restore's
	// memory estimate).
	Weigh func(e *rdb.Entry) int64
}

// DefaultInspectConfig returns the defaults.
func DefaultInspectConfig() InspectConfig { return InspectConfig{Top: 10, Prefixes: 10} }

// Report is what Inspect found. Sizes are bytes of the RDB: a key's is its
// whole record (value as serialized, key, expiry), which is what it costs
// to move, not its memory in Redis.
type Report struct {
	Path string `json:"path"`
	// Kind is "snapshot" (a snapshot directory) or "rdb" (one file).
	Kind     string        `json:"kind"`
	Snapshot *SnapshotInfo `json:"snapshot,omitempty"`
	// Total sums every RDB read.
	Total  RDBStats      `json:"total"`
	Shards []ShardReport `json:"shards,omitempty"`
	// RangesOf says whose slot ranges Ranges counts: "snapshot" (its own
	// table) or "target".
	RangesOf string        `json:"ranges_of,omitempty"`
	Ranges   []RangeReport `json:"ranges,omitempty"`
	Largest  []KeyReport   `json:"largest,omitempty"`
	// Problems are disagreements between a snapshot's files and its
	// manifest, and keys in a shard's RDB that its table gives to another
	// shard. A file that cannot be read is an error, not a problem.
	Problems []string `json:"problems,omitempty"`
	// Prefixes are the key prefixes holding the most bytes, the most
	// first (InspectConfig.Prefixes of them).
	Prefixes []PrefixReport `json:"prefixes,omitempty"`
	// SlotKeys and SlotBytes are the keys and RDB bytes of every slot,
	// over every database (reshard plan weighs slots by them);
	// SlotWeights the sums of InspectConfig.Weigh, nil without it.
	SlotKeys, SlotBytes, SlotWeights []int64 `json:"-"`
}

// SnapshotInfo is the manifest's header.
type SnapshotInfo struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	CutTime time.Time `json:"cut_time"`
	Epoch   uint64    `json:"epoch"`
	Spec    string    `json:"spec"`
	PauseUS int64     `json:"pause_us"`
	// KeysAtCut is the manifest's key count at the cut.
	KeysAtCut int64 `json:"keys_at_cut"`
}

// RDBStats describes the content of one RDB, or the sum of several.
type RDBStats struct {
	// RDBVersion is the file's version; for a sum, the highest.
	RDBVersion int   `json:"rdb_version"`
	Bytes      int64 `json:"bytes"`
	Keys       int64 `json:"keys"`
	// Expires counts the keys with a TTL.
	Expires int64         `json:"expires"`
	DBKeys  map[int]int64 `json:"db_keys"`
	Types   []TypeStats   `json:"types"`
	// Functions counts function libraries, ModuleAux module aux records.
	Functions int64 `json:"functions,omitempty"`
	ModuleAux int64 `json:"module_aux,omitempty"`
	// Aux holds the file's AUX fields (redis-ver, ctime, used-mem,
	// repl-id, ...); only for a single file.
	Aux map[string]string `json:"aux,omitempty"`
	// CRC64 is the file's checksum as computed (16 hex digits); only for
	// a single file of RDB version 5 or later.
	CRC64 string `json:"crc64,omitempty"`
}

// TypeStats counts the keys of one type and encoding.
type TypeStats struct {
	// Type is the Redis type (TYPE's answer), Encoding the RDB encoding
	// (rdb.TypeName).
	Type     string `json:"type"`
	Encoding string `json:"encoding"`
	Keys     int64  `json:"keys"`
	Bytes    int64  `json:"bytes"`
}

// ShardReport is one shard of a snapshot.
type ShardReport struct {
	Index        int      `json:"index"`
	Addr         string   `json:"addr"`
	RDBFile      string   `json:"rdb_file"`
	RDB          RDBStats `json:"rdb"`
	TailFile     string   `json:"tail_file"`
	TailBytes    int64    `json:"tail_bytes"`
	TailCommands int64    `json:"tail_commands"`
	KeysAtCut    int64    `json:"keys_at_cut"`
	// Misplaced counts keys whose slot the snapshot's table gives to
	// another shard.
	Misplaced int64 `json:"misplaced"`
}

// RangeReport counts the keys in one slot range of a topology.
type RangeReport struct {
	Shard int    `json:"shard"`
	Addr  string `json:"addr"`
	From  uint16 `json:"from"`
	To    uint16 `json:"to"`
	Keys  int64  `json:"keys"`
	Bytes int64  `json:"bytes"`
}

// KeyReport is one key.
type KeyReport struct {
	Key      string `json:"key"`
	DB       int    `json:"db"`
	Type     string `json:"type"`
	Encoding string `json:"encoding"`
	Bytes    int64  `json:"bytes"`
	// ExpireMs is the absolute expiry in Unix milliseconds, 0 for none.
	ExpireMs int64  `json:"expire_ms,omitempty"`
	Slot     uint16 `json:"slot"`
	// File is the RDB it is in (a snapshot's shard-N.rdb, or the file).
	File string `json:"file"`
}

// Inspect reports what a snapshot directory (one with a manifest.json) or
// a single RDB file holds. It reads every RDB once, record by record,
// without keeping or decoding values, so its memory does not grow with
// the data (the largest-keys list holds Top key names). A file that is
// corrupt or truncated fails it with an error naming the file and the
// byte offset (an *rdb.Error for an RDB).
func Inspect(path string, cfg InspectConfig) (Report, error) {
	if cfg.Top < 0 {
		return Report{}, fmt.Errorf("snapshot: inspect: top must not be negative, got %d", cfg.Top)
	}
	var target *router.Table
	if len(cfg.Target) > 0 {
		t, err := router.NewTable(0, cfg.Target)
		if err != nil {
			return Report{}, fmt.Errorf("snapshot: inspect: target topology: %w", err)
		}
		target = t
	}
	if cfg.Prefixes < 0 {
		return Report{}, fmt.Errorf("snapshot: inspect: prefixes must not be negative, got %d", cfg.Prefixes)
	}
	in := &inspector{top: topKeys{max: cfg.Top}, s3: cfg.S3, prefixes: newPrefixTop(), weigh: cfg.Weigh}
	var isSnapshot bool
	if objstore.IsURL(path) {
		u, err := objstore.ParseURL(path)
		if err != nil {
			return Report{}, fmt.Errorf("snapshot: inspect: %w", err)
		}
		if cfg.S3 == nil {
			return Report{}, fmt.Errorf("snapshot: inspect %s: %w", path, objstore.ErrNoClient)
		}
		isSnapshot = !strings.HasSuffix(u.Key, ".rdb")
	} else {
		fi, err := os.Stat(path)
		if err != nil {
			return Report{}, fmt.Errorf("snapshot: inspect: %w", err)
		}
		isSnapshot = fi.IsDir()
	}
	rep := Report{Path: path}
	var table *router.Table
	if isSnapshot {
		m, err := in.manifest(path)
		if err != nil {
			return Report{}, fmt.Errorf("snapshot: inspect: %w", err)
		}
		if table, err = m.RouterTable(); err != nil {
			return Report{}, fmt.Errorf("snapshot: inspect: %w", err)
		}
		rep.Kind = "snapshot"
		rep.Snapshot = &SnapshotInfo{ID: m.ID, Name: m.Name, Created: m.Created, CutTime: m.CutTime,
			Epoch: m.Epoch, Spec: m.Table.Spec, PauseUS: m.PauseUS, KeysAtCut: m.Keys}
		if err := in.snapshot(&rep, path, m, table); err != nil {
			return Report{}, fmt.Errorf("snapshot: inspect: %w", err)
		}
	} else {
		rep.Kind = "rdb"
		stats, err := in.file(path, path[strings.LastIndexAny(path, `/\`)+1:], nil, -1)
		if err != nil {
			return Report{}, fmt.Errorf("snapshot: inspect: %w", err)
		}
		rep.Total = stats.RDBStats
	}
	switch {
	case target != nil:
		rep.RangesOf, rep.Ranges = "target", in.ranges(target)
	case table != nil:
		rep.RangesOf, rep.Ranges = "snapshot", in.ranges(table)
	}
	rep.Largest = in.top.sorted()
	rep.SlotKeys, rep.SlotBytes = in.slotKeys[:], in.slotBytes[:]
	if cfg.Weigh != nil {
		rep.SlotWeights = in.slotWeights[:]
	}
	rep.Prefixes = in.prefixes.top(cfg.Prefixes)
	return rep, nil
}

// inspector accumulates over every file read.
type inspector struct {
	slotKeys  [router.NumSlots]int64
	slotBytes [router.NumSlots]int64
	top       topKeys
	s3        *objstore.Client
	prefixes  *prefixTop

	weigh       func(e *rdb.Entry) int64
	slotWeights [router.NumSlots]int64
}

func (in *inspector) snapshot(rep *Report, dir string, m Manifest, table *router.Table) error {
	types := map[[2]string]*TypeStats{}
	rep.Total.DBKeys = map[int]int64{}
	for i, sh := range m.Shards {
		stats, err := in.file(objstore.JoinPath(dir, sh.RDBFile), sh.RDBFile, table, i)
		if err != nil {
			return err
		}
		misplaced := stats.misplaced
		problem := func(format string, args ...any) {
			rep.Problems = append(rep.Problems, fmt.Sprintf("shard %d (%s): ", i, sh.Addr)+fmt.Sprintf(format, args...))
		}
		if stats.CRC64 != sh.RDBCRC64 && stats.RDBVersion >= 5 {
			problem("%s checksum %s, manifest says %s", sh.RDBFile, stats.CRC64, sh.RDBCRC64)
		}
		if stats.Bytes != sh.RDBSize {
			problem("%s is %d bytes, manifest says %d", sh.RDBFile, stats.Bytes, sh.RDBSize)
		}
		if stats.Keys != sh.Keys {
			problem("%s has %d keys, manifest says %d", sh.RDBFile, stats.Keys, sh.Keys)
		}
		if misplaced > 0 {
			problem("%d keys in %s belong to other shards by the snapshot's table", misplaced, sh.RDBFile)
		}
		tail, err := in.tail(objstore.JoinPath(dir, sh.TailFile))
		if err != nil {
			return err
		}
		if tail.Size != sh.TailSize || tail.Commands != sh.TailCommands || formatCRC(tail.CRC64) != sh.TailCRC64 {
			problem("%s has %d commands in %d bytes (checksum %s), manifest says %d in %d (%s)",
				sh.TailFile, tail.Commands, tail.Size, formatCRC(tail.CRC64), sh.TailCommands, sh.TailSize, sh.TailCRC64)
		}
		rep.Shards = append(rep.Shards, ShardReport{
			Index: i, Addr: sh.Addr, RDBFile: sh.RDBFile, RDB: stats.RDBStats, TailFile: sh.TailFile,
			TailBytes: tail.Size, TailCommands: tail.Commands, KeysAtCut: sh.KeysAtCut, Misplaced: misplaced,
		})
		t := &rep.Total
		t.RDBVersion = max(t.RDBVersion, stats.RDBVersion)
		t.Bytes += stats.Bytes
		t.Keys += stats.Keys
		t.Expires += stats.Expires
		t.Functions += stats.Functions
		t.ModuleAux += stats.ModuleAux
		for db, n := range stats.DBKeys {
			t.DBKeys[db] += n
		}
		for _, ts := range stats.Types {
			k := [2]string{ts.Type, ts.Encoding}
			if types[k] == nil {
				types[k] = &TypeStats{Type: ts.Type, Encoding: ts.Encoding}
			}
			types[k].Keys += ts.Keys
			types[k].Bytes += ts.Bytes
		}
	}
	rep.Total.Types = sortTypes(types)
	return nil
}

// fileStats is RDBStats plus what only a snapshot needs.
type fileStats struct {
	RDBStats
	misplaced int64
}

// file reads one RDB. With a table, keys whose slot it does not give to
// shard are counted as misplaced.
func (in *inspector) file(path, name string, table *router.Table, shard int) (fileStats, error) {
	f, err := in.open(path)
	if err != nil {
		return fileStats{}, err
	}
	defer f.Close()
	r, err := rdb.NewReader(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		return fileStats{}, fmt.Errorf("%s: %w", path, err)
	}
	r.SkipValues(true)
	st := fileStats{RDBStats: RDBStats{RDBVersion: int(r.Version()), DBKeys: map[int]int64{}, Aux: map[string]string{}}}
	types := map[[2]string]*TypeStats{}
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fileStats{}, fmt.Errorf("%s: %w", path, err)
		}
		switch e.Kind {
		case rdb.KindAux:
			st.Aux[string(e.Key)] = printable(e.Value)
		case rdb.KindFunction:
			st.Functions++
		case rdb.KindModuleAux:
			st.ModuleAux++
		case rdb.KindKey:
			st.Keys++
			st.DBKeys[e.DB]++
			if e.ExpireMs >= 0 {
				st.Expires++
			}
			k := [2]string{rdb.ObjectType(e.Type), rdb.TypeName(e.Type)}
			if types[k] == nil {
				types[k] = &TypeStats{Type: k[0], Encoding: k[1]}
			}
			types[k].Keys++
			types[k].Bytes += e.Size
			slot := router.Slot(e.Key)
			in.slotKeys[slot]++
			in.slotBytes[slot] += e.Size
			if in.weigh != nil {
				in.slotWeights[slot] += in.weigh(e)
			}
			in.prefixes.add(e.Key, e.Size)
			if table != nil && table.ShardOfSlot(slot) != shard {
				st.misplaced++
			}
			if in.top.wants(e.Size) {
				kr := KeyReport{Key: string(e.Key), DB: e.DB, Type: k[0], Encoding: k[1], Bytes: e.Size,
					Slot: slot, File: name}
				if e.ExpireMs >= 0 {
					kr.ExpireMs = e.ExpireMs
				}
				in.top.add(kr)
			}
		}
	}
	st.Bytes = r.Offset()
	if _, computed, ok := r.Checksum(); ok {
		st.CRC64 = formatCRC(computed)
	}
	st.Types = sortTypes(types)
	if len(st.Aux) == 0 {
		st.Aux = nil
	}
	return st, nil
}

func (in *inspector) ranges(t *router.Table) []RangeReport {
	var out []RangeReport
	for i, sh := range t.Shards() {
		for _, r := range sh.Ranges {
			rr := RangeReport{Shard: i, Addr: sh.Addr, From: r.From, To: r.To}
			for s := int(r.From); s <= int(r.To); s++ {
				rr.Keys += in.slotKeys[s]
				rr.Bytes += in.slotBytes[s]
			}
			out = append(out, rr)
		}
	}
	return out
}

func sortTypes(m map[[2]string]*TypeStats) []TypeStats {
	out := make([]TypeStats, 0, len(m))
	for _, ts := range m {
		out = append(out, *ts)
	}
	slices.SortFunc(out, func(a, b TypeStats) int {
		if a.Keys != b.Keys {
			if a.Keys > b.Keys {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Type+"/"+a.Encoding, b.Type+"/"+b.Encoding)
	})
	return out
}

// printable returns an AUX value as text, quoted if it is not.
func printable(b []byte) string {
	if utf8.Valid(b) && !strings.ContainsFunc(string(b), func(r rune) bool { return r < ' ' }) {
		return string(b)
	}
	return strconv.Quote(string(b))
}

// topKeys keeps the max largest keys: a min-heap by size, so the smallest
// kept is the one a larger key evicts.
type topKeys struct {
	max  int
	keys []KeyReport
}

func (h *topKeys) Len() int           { return len(h.keys) }
func (h *topKeys) Less(i, j int) bool { return h.keys[i].Bytes < h.keys[j].Bytes }
func (h *topKeys) Swap(i, j int)      { h.keys[i], h.keys[j] = h.keys[j], h.keys[i] }
func (h *topKeys) Push(x any)         { h.keys = append(h.keys, x.(KeyReport)) }
func (h *topKeys) Pop() any {
	k := h.keys[len(h.keys)-1]
	h.keys = h.keys[:len(h.keys)-1]
	return k
}

// wants reports whether a key of size would be kept, before its name is
// copied.
func (h *topKeys) wants(size int64) bool {
	return h.max > 0 && (len(h.keys) < h.max || size > h.keys[0].Bytes)
}

func (h *topKeys) add(k KeyReport) {
	if len(h.keys) < h.max {
		heap.Push(h, k)
		return
	}
	h.keys[0] = k
	heap.Fix(h, 0)
}

func (h *topKeys) sorted() []KeyReport {
	out := slices.Clone(h.keys)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// WriteText renders the report for a terminal.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	if s := r.Snapshot; s != nil {
		p("snapshot %s", s.ID)
		if s.Name != "" {
			p(" (%s)", s.Name)
		}
		p("\n  path:\t%s\n", r.Path)
		p("  created:\t%s\n  cut:\t%s (barrier held %d us)\n", s.Created.Format(time.RFC3339), s.CutTime.Format(time.RFC3339), s.PauseUS)
		p("  epoch:\t%d\n  table:\t%s\n", s.Epoch, s.Spec)
		p("  keys at the cut:\t%d\n", s.KeysAtCut)
	} else {
		p("rdb file %s\n", r.Path)
	}
	t := r.Total
	p("  rdb version:\t%d\n  rdb bytes:\t%d (%s)\n", t.RDBVersion, t.Bytes, humanBytes(t.Bytes))
	p("  keys:\t%d (%d with an expiry)\n", t.Keys, t.Expires)
	if t.CRC64 != "" {
		p("  crc64:\t%s\n", t.CRC64)
	}
	if t.Functions > 0 || t.ModuleAux > 0 {
		p("  functions:\t%d\n  module aux records:\t%d\n", t.Functions, t.ModuleAux)
	}
	if len(t.Aux) > 0 {
		names := make([]string, 0, len(t.Aux))
		for k := range t.Aux {
			names = append(names, k)
		}
		sort.Strings(names)
		p("\naux fields:\n")
		for _, k := range names {
			p("  %s\t%s\n", k, t.Aux[k])
		}
	}
	if len(t.DBKeys) > 0 {
		p("\ndatabases:\n  DB\tKEYS\n")
		dbs := make([]int, 0, len(t.DBKeys))
		for db := range t.DBKeys {
			dbs = append(dbs, db)
		}
		sort.Ints(dbs)
		for _, db := range dbs {
			p("  %d\t%d\n", db, t.DBKeys[db])
		}
	}
	if len(t.Types) > 0 {
		p("\ntypes:\n  TYPE\tENCODING\tKEYS\tBYTES\n")
		for _, ts := range t.Types {
			p("  %s\t%s\t%d\t%d\n", ts.Type, ts.Encoding, ts.Keys, ts.Bytes)
		}
	}
	if len(r.Shards) > 0 {
		p("\nshards:\n  #\tADDR\tRDB\tKEYS\tEXPIRES\tRDB BYTES\tTAIL CMDS\tTAIL BYTES\tKEYS AT CUT\n")
		for _, s := range r.Shards {
			p("  %d\t%s\tv%d\t%d\t%d\t%d\t%d\t%d\t%d\n", s.Index, s.Addr, s.RDB.RDBVersion, s.RDB.Keys, s.RDB.Expires,
				s.RDB.Bytes, s.TailCommands, s.TailBytes, s.KeysAtCut)
		}
	}
	if len(r.Ranges) > 0 {
		p("\nkeys per slot range (%s table):\n  SHARD\tADDR\tSLOTS\tKEYS\tBYTES\n", r.RangesOf)
		for _, rr := range r.Ranges {
			p("  %d\t%s\t%s\t%d\t%d\n", rr.Shard, rr.Addr, formatRange(router.Range{From: rr.From, To: rr.To}), rr.Keys, rr.Bytes)
		}
	}
	if len(r.Prefixes) > 0 {
		p("\nkey prefixes with the most bytes:\n")
		WritePrefixes(tw, r.Prefixes, r.Total.Bytes)
	}
	if len(r.Largest) > 0 {
		p("\nlargest keys:\n  BYTES\tTYPE\tENCODING\tDB\tSLOT\tFILE\tEXPIRES\tKEY\n")
		for _, k := range r.Largest {
			exp := "-"
			if k.ExpireMs > 0 {
				exp = time.UnixMilli(k.ExpireMs).UTC().Format(time.RFC3339)
			}
			p("  %d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", k.Bytes, k.Type, k.Encoding, k.DB, k.Slot, k.File, exp, printable([]byte(k.Key)))
		}
	}
	if len(r.Problems) > 0 {
		p("\nproblems:\n")
		for _, pr := range r.Problems {
			p("  %s\n", pr)
		}
	}
	return tw.Flush()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (in *inspector) tail(path string) (TailSummary, error) {
	f, err := in.open(path)
	if err != nil {
		return TailSummary{}, err
	}
	defer f.Close()
	return checkTail(f, path, -1)
}

// open opens one of the files read, local or in a bucket.
func (in *inspector) open(name string) (io.ReadCloser, error) {
	return objstore.OpenFile(context.Background(), in.s3, name)
}

// manifest reads the manifest of the snapshot at dir, local or in a bucket.
func (in *inspector) manifest(dir string) (Manifest, error) {
	f, err := in.open(objstore.JoinPath(dir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, fmt.Errorf("%w: %s has no %s", ErrNotSnapshot, dir, ManifestFile)
	}
	if err != nil {
		return Manifest{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return Manifest{}, err
	}
	return parseManifest(b, dir, "")
}

// WritePrefixes writes prefixes as a table (to a tabwriter), each with its
// share of total bytes.
func WritePrefixes(w io.Writer, prefixes []PrefixReport, total int64) {
	fmt.Fprintf(w, "  PREFIX\tKEYS\tBYTES\tSHARE\n")
	for _, pr := range prefixes {
		share := 0.0
		if total > 0 {
			share = 100 * float64(pr.Bytes) / float64(total)
		}
		over := ""
		if pr.OverBytes > 0 {
			over = fmt.Sprintf(" (at most %d over)", pr.OverBytes)
		}
		fmt.Fprintf(w, "  %s\t%d\t%d%s\t%.1f%%\n", printable([]byte(pr.Prefix)), pr.Keys, pr.Bytes, over, share)
	}
}
