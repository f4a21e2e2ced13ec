package router

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/reshard/reshard/internal/atomicfile"
)

// TableFile is the name of the persisted table inside the state directory.
const TableFile = "topology.json"

const tableFileVersion = 1

// tableFile is the on-disk form of a Table. The checksum covers the epoch
// and the canonical spec, not the JSON bytes, so it survives reformatting
// but not a changed address, range or epoch: after a cutover this file is
// the truth, and a flipped byte in an address would send traffic to the
// wrong server without any other sign.
type tableFile struct {
	Version  int         `json:"version"`
	Epoch    uint64      `json:"epoch"`
	Shards   []shardFile `json:"shards"`
	Checksum string      `json:"checksum"`
}

type shardFile struct {
	Addr     string   `json:"addr"`
	Replicas []string `json:"replicas,omitempty"`
	Ranges   []string `json:"ranges"`
}

func tableChecksum(epoch uint64, shards []Shard) string {
	sum := sha256.Sum256([]byte(strconv.FormatUint(epoch, 10) + "\n" + FormatSpec(shards)))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Save persists t as dir/topology.json so that a restarted proxy comes back
// on exactly this table. It writes a temporary file in dir, fsyncs it,
// renames it over the old file and fsyncs dir: a crash leaves either the
// old table or the new one, never a mix. dir must exist. A crash can leave
// a stray topology.json.tmp-* file behind; Load ignores it.
func Save(dir string, t *Table) error {
	data, err := Encode(t)
	if err != nil {
		return fmt.Errorf("router: save table: %w", err)
	}
	// 0644: the table holds no secrets, and operators read it with
	// `reshard inspect` or plain tools.
	if err := atomicfile.Write(dir, TableFile, data, 0o644); err != nil {
		return fmt.Errorf("router: save table epoch %d: %w", t.Epoch(), err)
	}
	return nil
}

// Encode is t in the form Save writes and Decode reads: JSON with the
// epoch, each shard's address and ranges, and a checksum.
func Encode(t *Table) ([]byte, error) {
	shards := t.Shards()
	f := tableFile{
		Version:  tableFileVersion,
		Epoch:    t.Epoch(),
		Shards:   make([]shardFile, len(shards)),
		Checksum: tableChecksum(t.Epoch(), shards),
	}
	for i, sh := range shards {
		f.Shards[i].Addr = sh.Addr
		f.Shards[i].Replicas = sh.Replicas
		f.Shards[i].Ranges = make([]string, len(sh.Ranges))
		for j, r := range sh.Ranges {
			f.Shards[i].Ranges[j] = strconv.Itoa(int(r.From)) + "-" + strconv.Itoa(int(r.To))
		}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// Decode reads a table in Encode's form; an error wraps ErrCorruptTable
// when data is malformed, fails its checksum or does not describe a valid
// topology.
func Decode(data []byte) (*Table, error) {
	t, err := decodeTable(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptTable, err)
	}
	return t, nil
}

// Load reads the table persisted by Save in dir. It returns an error
// wrapping ErrNoTable when there is none, and one wrapping ErrCorruptTable
// when the file exists but is malformed, fails its checksum or does not
// describe a valid topology; a proxy must not start on such a file.
func Load(dir string) (*Table, error) {
	path := filepath.Join(dir, TableFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoTable, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("router: load table: %w", err)
	}
	t, err := decodeTable(data)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrCorruptTable, path, err)
	}
	return t, nil
}

func decodeTable(data []byte) (*Table, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f tableFile
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	if f.Version != tableFileVersion {
		return nil, fmt.Errorf("unsupported version %d (want %d)", f.Version, tableFileVersion)
	}
	shards := make([]Shard, len(f.Shards))
	for i, sf := range f.Shards {
		// Addresses go through the spec parser's checks too: a file that
		// passed its checksum can still have been written by a buggy
		// version, and it is cheaper to refuse it here than to dial it.
		addr, err := canonicalAddr(sf.Addr)
		if err != nil {
			return nil, fmt.Errorf("shard %d: %w", i, err)
		}
		if addr != sf.Addr {
			return nil, fmt.Errorf("shard %d: address %q is not in canonical form %q", i, sf.Addr, addr)
		}
		shards[i].Addr = addr
		for _, ra := range sf.Replicas {
			r, err := canonicalAddr(ra)
			if err != nil || r != ra {
				return nil, fmt.Errorf("shard %s: bad replica address %q", addr, ra)
			}
			shards[i].Replicas = append(shards[i].Replicas, r)
		}
		for _, rs := range sf.Ranges {
			r, err := parseRanges(rs)
			if err != nil || len(r) != 1 {
				return nil, fmt.Errorf("shard %s: bad slot range %q", addr, rs)
			}
			shards[i].Ranges = append(shards[i].Ranges, r[0])
		}
	}
	if want := tableChecksum(f.Epoch, shards); f.Checksum != want {
		return nil, fmt.Errorf("checksum %q does not match the content (%s)", f.Checksum, want)
	}
	return NewTable(f.Epoch, shards)
}
