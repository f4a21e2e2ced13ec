package snapshot

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/reshard/reshard/snapshot/rdb"
)

// RDBSummary is what reading an RDB file to its end tells.
type RDBSummary struct {
	Version int
	Size    int64
	// Keys counts all keys; DBKeys per database; Expires those with a TTL.
	Keys    int64
	DBKeys  map[int]int64
	Expires int64
	// CRC64 is the checksum computed over the file (Redis's CRC-64/Jones,
	// as stored in its last 8 bytes). Zero for RDB versions below 5.
	CRC64 uint64
}

// CheckRDB reads the RDB file at path record by record with package rdb,
// walking every value's structure without keeping it, and checks the
// trailing CRC64. Its memory does not grow with the file.
func CheckRDB(path string) (RDBSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return RDBSummary{}, err
	}
	defer f.Close()
	return readRDBSummary(bufio.NewReaderSize(f, 64<<10), path)
}

// readRDBSummary is CheckRDB on a reader; name goes into its errors. It stops
// at the RDB's end (EOF opcode and checksum).
func readRDBSummary(in io.Reader, name string) (RDBSummary, error) {
	r, err := rdb.NewReader(in)
	if err != nil {
		return RDBSummary{}, fmt.Errorf("check %s: %w", name, err)
	}
	r.SkipValues(true)
	sum := RDBSummary{Version: int(r.Version()), DBKeys: map[int]int64{}}
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return RDBSummary{}, fmt.Errorf("check %s: %w", name, err)
		}
		if e.Kind == rdb.KindKey {
			sum.Keys++
			sum.DBKeys[e.DB]++
			if e.ExpireMs >= 0 {
				sum.Expires++
			}
		}
	}
	sum.Size = r.Offset()
	if _, computed, ok := r.Checksum(); ok {
		sum.CRC64 = computed
	}
	return sum, nil
}

// VerifyRDB is CheckRDB for CaptureConfig.Verify, the default there.
func VerifyRDB(path string) error {
	_, err := CheckRDB(path)
	return err
}
