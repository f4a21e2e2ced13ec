package snapshot

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/reshard/reshard/snapshot/rdb"
)

// TailSummary is what reading a tail file to its end tells.
type TailSummary struct {
	// Size is the file's length in bytes.
	Size int64
	// Commands counts the commands (MULTI and EXEC included): the number
	// of replies a replay gets.
	Commands int64
	// CRC64 is Redis's CRC-64/Jones over the whole file, the checksum a
	// manifest records for it.
	CRC64 uint64
}

// CheckTail reads a tail file command by command, as the capture wrote it:
// RESP arrays of bulk strings and nothing else, ending on a command
// boundary outside MULTI/EXEC. A replay of a file that passes cannot stop
// in the middle of a command or leave a transaction open. Errors give the
// byte offset of the command that does not parse.
func CheckTail(path string) (TailSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return TailSummary{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return TailSummary{}, err
	}
	return checkTail(f, path, fi.Size())
}

// checkTail is CheckTail on a reader of size bytes (-1: unknown); path
// names it in errors.
func checkTail(in io.Reader, path string, size int64) (TailSummary, error) {
	crc := rdb.NewCRC64()
	p := cmdParser{r: bufio.NewReaderSize(io.TeeReader(in, crc), 64<<10)}
	var sum TailSummary
	inTx := false
	for {
		n, kind, err := p.next(io.Discard)
		if err == io.EOF && (size < 0 || sum.Size == size) {
			break
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return TailSummary{}, fmt.Errorf("check tail %s: truncated command at offset %d", path, sum.Size)
		}
		if err != nil {
			return TailSummary{}, fmt.Errorf("check tail %s: command at offset %d: %w", path, sum.Size, err)
		}
		if !kind.kept() {
			// The capture leaves PING and REPLCONF out; one here means the
			// file was not written by a capture.
			return TailSummary{}, fmt.Errorf("check tail %s: command at offset %d: %w: replication protocol command in a tail", path, sum.Size, ErrProtocol)
		}
		switch kind {
		case kindMulti:
			if inTx {
				return TailSummary{}, fmt.Errorf("check tail %s: command at offset %d: %w: nested MULTI", path, sum.Size, ErrProtocol)
			}
			inTx = true
		case kindExec:
			inTx = false
		}
		sum.Size += n
		sum.Commands++
	}
	if inTx {
		return TailSummary{}, fmt.Errorf("check tail %s: ends inside MULTI/EXEC at offset %d", path, sum.Size)
	}
	sum.CRC64 = crc.Sum64()
	return sum, nil
}
