package migrate

import (
	"fmt"
	"strconv"

	"github.com/reshard/reshard/internal/resp"
)

// The restore's own RESP: commands of mixed argument types, and the limits
// of a tail file's commands. The framing itself (encoding, reading the
// targets' replies and the tail's commands) is internal/resp's.

// appendCommand appends a whole command of string, []byte and integer
// arguments, so that a command mixing a key, a name and a TTL reads as one
// call.
func appendCommand(b []byte, args ...any) []byte {
	b = resp.AppendArrayHeader(b, len(args))
	for _, a := range args {
		switch v := a.(type) {
		case string:
			b = resp.AppendBulkString(b, v)
		case []byte:
			b = resp.AppendBulk(b, v)
		case int64:
			b = resp.AppendBulkInt(b, v)
		case int:
			b = resp.AppendBulkInt(b, int64(v))
		case uint64:
			b = resp.AppendBulkString(b, strconv.FormatUint(v, 10))
		default:
			panic(fmt.Sprintf("migrate: appendCommand: argument of type %T", a)) // programming error
		}
	}
	return b
}

// tailLimits bound one tail command; a replication stream never comes
// near them, so anything beyond is a corrupt file.
var tailLimits = resp.CommandLimits{MaxArgs: 1 << 24, MaxBulkLen: 1 << 30}

// clip shortens b for an error message.
func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
