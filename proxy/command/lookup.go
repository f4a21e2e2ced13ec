package command

import "strings"

// maxNameLen bounds the names Lookup lowercases on the stack; longer
// arguments cannot name a command. init checks every name fits.
const maxNameLen = 64

var byName map[string]*Info

// count is the number of commands and subcommands (Count).
var count int

func init() {
	byName = make(map[string]*Info, len(table))
	for j := range table {
		c := &table[j]
		c.setup()
		c.id, count = count, count+1
		byName[c.name] = c
		if len(c.subs) == 0 {
			continue
		}
		c.subByName = make(map[string]*Info, len(c.subs))
		for k := range c.subs {
			s := &c.subs[k]
			s.setup()
			s.id, count = count, count+1
			s.parent = c
			_, sub, _ := strings.Cut(s.name, "|")
			c.subByName[sub] = s
		}
	}
}

// setup derives what the data path needs from the generated fields.
func (i *Info) setup() {
	i.mayReplicate = mayReplicate[i.name]
	i.numkeys = numkeysByName(i.name)
	i.keysFallback = keysFallbackByName(i.name)
	i.hasKeys = i.keysFallback != nil
	for _, ks := range i.keySpecs {
		if ks.Flags&KeyNotKey == 0 {
			i.hasKeys = true
		}
	}
}

// mayReplicate names the commands Redis 7.0 flags may_replicate (its
// src/commands/*.json). COMMAND INFO does not show the flag, so the
// generated table cannot carry it (Flags stays what the server shows);
// Info.MayReplicate tells it, and CLIENT PAUSE WRITE holds these as it
// holds writes.
var mayReplicate = map[string]bool{
	"eval": true, "evalsha": true, "fcall": true, "pfcount": true, "publish": true, "spublish": true,
}

// Lookup returns the Info of the command args names, matching args[0]
// without regard to case, or nil if Redis has no such command. For a
// container command (CONFIG, CLIENT, OBJECT, ...) it returns the Info of
// the subcommand args[1] names, or the container's own Info when args[1]
// is missing or names no subcommand (Redis then replies "unknown
// subcommand"; IsContainer tells the caller). Lookup does not allocate.
func Lookup(args [][]byte) *Info {
	if len(args) == 0 {
		return nil
	}
	var buf [maxNameLen]byte
	n, ok := lower(&buf, args[0])
	if !ok {
		return nil
	}
	c := byName[string(buf[:n])]
	if c == nil || c.subByName == nil || len(args) < 2 {
		return c
	}
	if n, ok = lower(&buf, args[1]); ok {
		if s := c.subByName[string(buf[:n])]; s != nil {
			return s
		}
	}
	return c
}

// LookupName returns the Info for a table name: "get", or "object|encoding"
// for a subcommand, in any case. Unlike Lookup it allocates; it is meant for
// configuration and tests, not the data path.
func LookupName(name string) *Info {
	name = strings.ToLower(name)
	container, sub, isSub := strings.Cut(name, "|")
	c := byName[container]
	if c == nil || !isSub {
		return c
	}
	return c.subByName[sub]
}

// All returns every top-level command in name order; subcommands are
// reached through Subcommands. The slice is shared and must not be
// modified.
func All() []Info { return table }

// Count returns the number of commands and subcommands: every Info's ID is
// below it.
func Count() int { return count }

func lower(buf *[maxNameLen]byte, b []byte) (int, bool) {
	if len(b) > maxNameLen {
		return 0, false
	}
	for k, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[k] = c
	}
	return len(b), true
}
