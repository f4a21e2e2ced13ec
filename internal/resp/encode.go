package resp

import "strconv"

// Commands are RESP arrays of bulk strings. Every encoder appends to b and
// returns the extended slice, so a caller can build a pipeline of commands
// in one reused buffer without allocating per command.

// AppendCommand appends a command of byte-slice arguments.
func AppendCommand(b []byte, args ...[]byte) []byte {
	b = AppendArrayHeader(b, len(args))
	for _, a := range args {
		b = AppendBulk(b, a)
	}
	return b
}

// AppendCommandString appends a command of string arguments.
func AppendCommandString(b []byte, args ...string) []byte {
	b = AppendArrayHeader(b, len(args))
	for _, a := range args {
		b = AppendBulkString(b, a)
	}
	return b
}

// AppendArrayHeader appends the header of an array of n elements; the
// caller appends the n elements after it.
func AppendArrayHeader(b []byte, n int) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// AppendBulkHeader appends the header of a bulk string of n bytes; the
// caller appends the n bytes and a CRLF after it. It is for payloads that
// are encoded straight into b rather than built apart first.
func AppendBulkHeader(b []byte, n int) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// AppendBulk appends s as a bulk string.
func AppendBulk(b, s []byte) []byte {
	b = AppendBulkHeader(b, len(s))
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// AppendBulkString appends s as a bulk string.
func AppendBulkString(b []byte, s string) []byte {
	b = AppendBulkHeader(b, len(s))
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// AppendBulkInt appends v in decimal as a bulk string, the way a command's
// numeric argument goes.
func AppendBulkInt(b []byte, v int64) []byte {
	var tmp [20]byte
	return AppendBulk(b, strconv.AppendInt(tmp[:0], v, 10))
}
