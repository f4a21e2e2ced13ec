package migrate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot/rdb"
)

// The scan is the pre-flight pass over the sources: every RDB is read to
// its end (values skipped, so memory stays at the read buffer) and its
// checksum compared, every tail is parsed and each of its commands routed.
// It finds broken files before anything is written, and yields what the
// other checks need: the databases present, the RDB versions the values
// need, the function libraries, and per target the keys and bytes it will
// receive.

// Share is what one target receives from the sources.
type Share struct {
	Keys    int64 // keys to write
	Bytes   int64 // their size in the RDB files
	Expired int64 // keys already expired at scan time, to be skipped
	BigKeys int64 // keys above BigKeyBytes, to be written in chunks
	// Memory is the estimate of what the keys will take on the target
	// (used_memory), margin included; see memEstimate.
	Memory int64
	// largest is the largest key record, for the target's query
	// buffers while it is written.
	largest int64
}

// add adds o to s.
func (s *Share) add(o Share) {
	s.Keys += o.Keys
	s.Bytes += o.Bytes
	s.Expired += o.Expired
	s.BigKeys += o.BigKeys
	s.Memory += o.Memory
	s.largest = max(s.largest, o.largest)
}

// dbScan is what one database of one source holds.
type dbScan struct {
	keys, bytes, expired int64
	shares               []Share // by target index
	// need is the highest RDB version a value needs (rdb.MinVersion of
	// its type); needKey and needType name the first such value.
	need     uint16
	needKey  string
	needType byte
	module   string // first module value: "key (type name)"
	// slots counts the keys (not expired) per slot, for the check of
	// keys present in more than one source (dups.go).
	slots slotCounts
}

type tailDBScan struct {
	commands  int64 // data commands (SELECT, MULTI/EXEC, PING not counted)
	flushAt   int64 // offset after the last FLUSHDB/FLUSHALL affecting this db; 0 for none
	flushName string
	unrouted  error // first command that cannot be routed
	perTarget []int64
}

type tailScan struct {
	size     int64
	commands int64
	byDB     map[int]*tailDBScan
	flushAll int64 // offset after the last FLUSHALL; 0 for none
	err      error // a malformed file
}

type sourceScan struct {
	source
	version   uint16
	size      int64
	byDB      map[int]*dbScan
	functions int
	err       error // a broken RDB file (wraps ErrBadSource and the *rdb.Error)
	moduleAux string
	tail      *tailScan
}

type library struct {
	name string
	code []byte
	from string // the file it came from
}

type scanResult struct {
	nowMs     int64 // the clock the scan judged expiry by
	sources   []*sourceScan
	libraries []library
	problems  []error
}

// scanSources reads every source once. bigKey is the value size above
// which a key is chunked; nowMs decides which keys have expired.
func scanSources(srcs []source, table *router.Table, bigKey int64, nowMs int64) *scanResult {
	res := &scanResult{nowMs: nowMs}
	libs := map[string]int{}
	for _, src := range srcs {
		ss := &sourceScan{source: src, byDB: map[int]*dbScan{}}
		res.sources = append(res.sources, ss)
		scanRDB(ss, table, bigKey, nowMs, func(code []byte) {
			name := libraryName(code)
			if i, ok := libs[name]; ok {
				if !bytes.Equal(res.libraries[i].code, code) {
					res.problems = append(res.problems, problemf(ErrBadSource,
						"function library %q differs between %s and %s", name, res.libraries[i].from, src.RDB))
				}
				return
			}
			libs[name] = len(res.libraries)
			res.libraries = append(res.libraries, library{name: name, code: bytes.Clone(code), from: src.RDB})
		})
		if ss.err != nil {
			res.problems = append(res.problems, ss.err)
		}
		if src.Tail != "" {
			ss.tail = scanTail(src.files, src.Tail, table)
			if ss.tail.err != nil {
				res.problems = append(res.problems, ss.tail.err)
			}
		}
	}
	return res
}

func scanRDB(ss *sourceScan, table *router.Table, bigKey, nowMs int64, onFunction func([]byte)) {
	f, err := ss.files.open(ss.RDB)
	if err != nil {
		ss.err = &wrapped{sentinel: ErrBadSource, cause: err, msg: fmt.Sprintf("source %s: %v", ss.RDB, err)}
		return
	}
	defer f.Close()
	r, err := rdb.NewReader(f)
	if err != nil {
		ss.err = sourceError(ss.RDB, err)
		return
	}
	ss.version = r.Version()
	r.SkipValues(true)
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			ss.err = sourceError(ss.RDB, err)
			return
		}
		switch e.Kind {
		case rdb.KindFunction:
			ss.functions++
			onFunction(e.Value)
		case rdb.KindModuleAux:
			if ss.moduleAux == "" {
				name, _ := rdb.ModuleName(e.ModuleID)
				ss.moduleAux = name
			}
		case rdb.KindKey:
			d := ss.byDB[e.DB]
			if d == nil {
				d = &dbScan{shares: make([]Share, table.NumShards()), slots: make(slotCounts, router.NumSlots)}
				ss.byDB[e.DB] = d
			}
			slot := router.Slot(e.Key)
			sh := &d.shares[table.ShardOfSlot(slot)]
			if expiredAt(e, nowMs) {
				d.expired++
				sh.Expired++
				continue
			}
			d.keys++
			d.bytes += e.Size
			d.slots[slot]++
			sh.Keys++
			sh.Bytes += e.Size
			sh.Memory += memEstimate(e)
			sh.largest = max(sh.largest, e.Size)
			if e.Size-int64(len(e.Key)) > bigKey {
				sh.BigKeys++
			}
			if v := rdb.MinVersion(e.Type); v > d.need {
				d.need, d.needKey, d.needType = v, string(e.Key), e.Type
			}
			if e.Type == rdb.TypeModule2 || e.Type == rdb.TypeModulePreGA {
				if d.module == "" {
					name, _ := rdb.ModuleName(e.ModuleID)
					d.module = fmt.Sprintf("key %q holds a value of module type %q", e.Key, name)
				}
			}
		}
	}
	ss.size = r.Offset()
}

// sourceError wraps a read error of an RDB file: the message names the
// file and (through the *rdb.Error) the offset.
func sourceError(path string, err error) error {
	return &wrapped{sentinel: ErrBadSource, cause: err, msg: fmt.Sprintf("source %s: %v", path, err)}
}

// libraryName reads the name from a library's "#!lua name=NAME" line.
func libraryName(code []byte) string {
	line, _, _ := bytes.Cut(code, []byte("\n"))
	for _, f := range strings.Fields(string(line)) {
		if v, ok := strings.CutPrefix(f, "name="); ok {
			return v
		}
	}
	return clip(line, 60)
}

// scanTail parses a tail file and routes each of its commands, per
// database, so that the restore can refuse an unroutable one before
// anything is written.
func scanTail(fs *files, path string, table *router.Table) *tailScan {
	ts := &tailScan{byDB: map[int]*tailDBScan{}}
	fail := func(err error) *tailScan {
		ts.err = &wrapped{sentinel: ErrBadSource, cause: err, msg: fmt.Sprintf("tail %s: %v", path, err)}
		return ts
	}
	f, err := fs.open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	cr := resp.NewCommandReader(bufio.NewReaderSize(f, 64<<10), tailLimits)
	rt := &tailRouter{table: table}
	db := 0
	inMulti := false
	var parts []part
	get := func(db int) *tailDBScan {
		d := ts.byDB[db]
		if d == nil {
			d = &tailDBScan{perTarget: make([]int64, table.NumShards())}
			ts.byDB[db] = d
		}
		return d
	}
	for {
		off := cr.Offset()
		args, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		name := lowerName(args[0])
		switch name {
		case "ping", "replconf":
			continue
		case "select":
			n, err := strconv.Atoi(string(args[min(1, len(args)-1)]))
			if len(args) != 2 || err != nil || n < 0 {
				return fail(fmt.Errorf("at offset %d: bad SELECT", off))
			}
			if inMulti {
				return fail(fmt.Errorf("at offset %d: SELECT inside MULTI", off))
			}
			db = n
			continue
		case "multi":
			if inMulti {
				return fail(fmt.Errorf("at offset %d: MULTI inside MULTI", off))
			}
			inMulti = true
			continue
		case "exec":
			if !inMulti {
				return fail(fmt.Errorf("at offset %d: EXEC without MULTI", off))
			}
			inMulti = false
			continue
		case "flushall", "flushdb":
			if inMulti {
				return fail(fmt.Errorf("at offset %d: %s inside MULTI cannot be restored", off, strings.ToUpper(name)))
			}
			if name == "flushall" {
				ts.flushAll = cr.Offset()
			} else {
				d := get(db)
				d.flushAt, d.flushName = cr.Offset(), "FLUSHDB"
			}
			continue
		}
		ts.commands++
		d := get(db)
		d.commands++
		parts, err = rt.route(args, parts[:0])
		if err != nil {
			if d.unrouted == nil {
				d.unrouted = fmt.Errorf("tail %s at offset %d: %w", path, off, err)
			}
			continue
		}
		for _, p := range parts {
			if p.target >= 0 {
				d.perTarget[p.target]++
			}
		}
	}
	if inMulti {
		return fail(errors.New("file ends inside MULTI (truncated)"))
	}
	ts.size = cr.Offset()
	return ts
}

// flushOffset is where the restore of db starts in the tail: after the
// last command that emptied db. 0 means from the start.
func (ts *tailScan) flushOffset(db int) (int64, string) {
	at, name := ts.flushAll, "FLUSHALL"
	if d := ts.byDB[db]; d != nil && d.flushAt > at {
		at, name = d.flushAt, d.flushName
	}
	return at, name
}

// dbsWithData lists the databases that hold keys or receive tail writes,
// with a description of each for error messages.
func (res *scanResult) dbsWithData() (dbs []int, desc map[int]string) {
	keys := map[int]int64{}
	cmds := map[int]int64{}
	for _, ss := range res.sources {
		for db, d := range ss.byDB {
			keys[db] += d.keys + d.expired
		}
		if ss.tail != nil {
			for db, d := range ss.tail.byDB {
				if d.commands > 0 {
					cmds[db] += d.commands
				}
			}
		}
	}
	desc = map[int]string{}
	for db, n := range keys {
		desc[db] = fmt.Sprintf("%d (%s)", db, count(n, "key"))
	}
	for db, n := range cmds {
		if _, ok := desc[db]; ok {
			desc[db] = fmt.Sprintf("%d (%s, %s)", db, count(keys[db], "key"), count(n, "tail command"))
		} else {
			desc[db] = fmt.Sprintf("%d (%s)", db, count(n, "tail command"))
		}
	}
	for db := range desc {
		dbs = append(dbs, db)
	}
	slices.Sort(dbs)
	return dbs, desc
}
