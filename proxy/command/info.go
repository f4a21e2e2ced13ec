package command

import "strings"

// Info describes one Redis command or subcommand as COMMAND INFO and COMMAND
// DOCS report it. Infos live in a static table built at init and are shared
// by every goroutine; they must never be modified.
type Info struct {
	name     string // lowercase; subcommands as "container|sub"
	arity    int
	flags    Flag
	acl      ACLCategory
	firstKey int
	lastKey  int
	step     int
	keySpecs []KeySpec
	tips     Tips
	group    string
	since    string

	// subs is the literal subcommand list of a container (generated);
	// subByName indexes it by the subcommand's own name ("encoding").
	subs      []Info
	subByName map[string]*Info
	parent    *Info

	// keysFallback extracts keys when the key specs cannot describe
	// them (see keys.go); numkeys holds the Redis wording of the errors
	// of commands whose keys are counted by a numkeys argument.
	keysFallback func(args [][]byte, dst []int) []int
	numkeys      *numkeysErrors
	hasKeys      bool
	mayReplicate bool // MayReplicate (lookup.go)
	id           int  // index among all commands and subcommands (ID)
}

// ID returns the command's index among every command and subcommand of the
// table, from 0 to Count()-1, so that per-command figures can live in a
// slice instead of a map on the data path.
func (i *Info) ID() int { return i.id }

// Name returns the lowercase command name; subcommands are named
// "container|sub" as in COMMAND INFO ("object|encoding").
func (i *Info) Name() string { return i.name }

// Arity is Redis's arity: positive means exactly that many arguments
// (command name included), negative means at least -Arity.
func (i *Info) Arity() int { return i.arity }

// ArityOK reports whether nargs arguments (command name included) satisfy
// the command's arity, as Redis checks it before running a command.
func (i *Info) ArityOK(nargs int) bool {
	if i.arity >= 0 {
		return nargs == i.arity
	}
	return nargs >= -i.arity
}

// Flags returns the command flags.
func (i *Info) Flags() Flag { return i.flags }

// Has reports whether the command has every flag in f.
func (i *Info) Has(f Flag) bool { return i.flags&f == f }

// MayReplicate tells whether Redis flags the command may_replicate: not a
// write, but it may add to the replication stream (EVAL, PUBLISH,
// PFCOUNT, ...), which COMMAND INFO does not show.
func (i *Info) MayReplicate() bool { return i.mayReplicate }

// ACLCategories returns the command's ACL categories.
func (i *Info) ACLCategories() ACLCategory { return i.acl }

// FirstKey, LastKey and Step are the legacy (pre-key-spec) key positions of
// COMMAND INFO. They are wrong for commands with movable keys; use Keys.
func (i *Info) FirstKey() int { return i.firstKey }

// LastKey is the legacy last key position; negative counts from the end.
func (i *Info) LastKey() int { return i.lastKey }

// Step is the legacy distance between key positions.
func (i *Info) Step() int { return i.step }

// KeySpecs returns the Redis 7 key specifications. The slice is shared and
// must not be modified.
func (i *Info) KeySpecs() []KeySpec { return i.keySpecs }

// HasKeys reports whether the command can take key arguments at all.
func (i *Info) HasKeys() bool { return i.hasKeys }

// Tips returns the command tips (request and response policies).
func (i *Info) Tips() Tips { return i.tips }

// RequestPolicy is the request_policy tip: how a cluster client should
// route a keyless command.
func (i *Info) RequestPolicy() RequestPolicy { return i.tips.Request }

// ResponsePolicy is the response_policy tip: how replies from several
// shards are merged.
func (i *Info) ResponsePolicy() ResponsePolicy { return i.tips.Response }

// NondeterministicOutput reports the nondeterministic_output tip.
func (i *Info) NondeterministicOutput() bool { return i.tips.Nondeterministic }

// NondeterministicOutputOrder reports the nondeterministic_output_order tip.
func (i *Info) NondeterministicOutputOrder() bool { return i.tips.NondeterministicOrder }

// Group is the COMMAND DOCS group ("string", "sorted-set", "server", ...).
func (i *Info) Group() string { return i.group }

// Since is the Redis version that introduced the command.
func (i *Info) Since() string { return i.since }

// Parent returns the container of a subcommand, or nil.
func (i *Info) Parent() *Info { return i.parent }

// IsContainer reports whether the command has subcommands (CONFIG, CLIENT,
// OBJECT, ...).
func (i *Info) IsContainer() bool { return len(i.subs) > 0 }

// Subcommands returns the subcommands of a container, in table order. The
// slice is shared and must not be modified.
func (i *Info) Subcommands() []Info { return i.subs }

// Shorthands for the flags the proxy asks about on every command.

func (i *Info) IsWrite() bool       { return i.flags&FlagWrite != 0 }
func (i *Info) IsReadonly() bool    { return i.flags&FlagReadonly != 0 }
func (i *Info) IsDenyOOM() bool     { return i.flags&FlagDenyOOM != 0 }
func (i *Info) IsAdmin() bool       { return i.flags&FlagAdmin != 0 }
func (i *Info) IsPubSub() bool      { return i.flags&FlagPubSub != 0 }
func (i *Info) IsNoScript() bool    { return i.flags&FlagNoScript != 0 }
func (i *Info) IsBlocking() bool    { return i.flags&FlagBlocking != 0 }
func (i *Info) IsFast() bool        { return i.flags&FlagFast != 0 }
func (i *Info) IsNoMulti() bool     { return i.flags&FlagNoMulti != 0 }
func (i *Info) IsMovableKeys() bool { return i.flags&FlagMovableKeys != 0 }

// Flag is a set of command flags (the third element of COMMAND INFO).
type Flag uint32

// Command flags, named after Redis's flag strings (see Flag.String).
const (
	FlagWrite Flag = 1 << iota
	FlagReadonly
	FlagDenyOOM
	FlagModule
	FlagAdmin
	FlagPubSub
	FlagNoScript
	FlagBlocking
	FlagLoading
	FlagStale
	FlagSkipMonitor
	FlagSkipSlowlog
	FlagAsking
	FlagFast
	FlagNoAuth
	FlagMayReplicate
	FlagNoMandatoryKeys
	FlagNoAsyncLoading
	FlagNoMulti
	FlagMovableKeys
	FlagAllowBusy
	FlagModuleNoCluster
)

var flagNames = [...]string{
	"write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript",
	"blocking", "loading", "stale", "skip_monitor", "skip_slowlog", "asking",
	"fast", "no_auth", "may_replicate", "no_mandatory_keys",
	"no_async_loading", "no_multi", "movablekeys", "allow_busy",
	"module_no_cluster",
}

// String returns the flags as Redis names them, space separated.
func (f Flag) String() string { return bitNames(uint64(f), flagNames[:], "") }

// ACLCategory is a set of ACL categories.
type ACLCategory uint32

// ACL categories, named after Redis's (without the "@").
const (
	ACLKeyspace ACLCategory = 1 << iota
	ACLRead
	ACLWrite
	ACLSet
	ACLSortedSet
	ACLList
	ACLHash
	ACLString
	ACLBitmap
	ACLHyperLogLog
	ACLGeo
	ACLStream
	ACLPubSub
	ACLAdmin
	ACLFast
	ACLSlow
	ACLBlocking
	ACLDangerous
	ACLConnection
	ACLTransaction
	ACLScripting
)

var aclNames = [...]string{
	"keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
	"bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast",
	"slow", "blocking", "dangerous", "connection", "transaction", "scripting",
}

// String returns the categories as Redis names them ("@read @string").
func (c ACLCategory) String() string { return bitNames(uint64(c), aclNames[:], "@") }

func bitNames(bits uint64, names []string, prefix string) string {
	var b strings.Builder
	for j, n := range names {
		if bits&(1<<j) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(prefix)
		b.WriteString(n)
	}
	return b.String()
}

// Tips are the command tips of COMMAND INFO.
type Tips struct {
	Request               RequestPolicy
	Response              ResponsePolicy
	Nondeterministic      bool // nondeterministic_output
	NondeterministicOrder bool // nondeterministic_output_order
}

// RequestPolicy is the request_policy tip. The zero value means the
// command has no such tip: route it by its keys, or anywhere if keyless.
type RequestPolicy uint8

const (
	RequestDefault    RequestPolicy = iota
	RequestAllNodes                 // all_nodes
	RequestAllShards                // all_shards
	RequestMultiShard               // multi_shard
	RequestSpecial                  // special
)

var requestNames = [...]string{"", "all_nodes", "all_shards", "multi_shard", "special"}

// String returns the tip's value as Redis spells it ("" for the default).
func (p RequestPolicy) String() string {
	if int(p) < len(requestNames) {
		return requestNames[p]
	}
	return "unknown"
}

// ResponsePolicy is the response_policy tip. The zero value means the
// command has no such tip.
type ResponsePolicy uint8

const (
	ResponseDefault       ResponsePolicy = iota
	ResponseOneSucceeded                 // one_succeeded
	ResponseAllSucceeded                 // all_succeeded
	ResponseAggLogicalAnd                // agg_logical_and
	ResponseAggLogicalOr                 // agg_logical_or
	ResponseAggMin                       // agg_min
	ResponseAggMax                       // agg_max
	ResponseAggSum                       // agg_sum
	ResponseSpecial                      // special
)

var responseNames = [...]string{"", "one_succeeded", "all_succeeded",
	"agg_logical_and", "agg_logical_or", "agg_min", "agg_max", "agg_sum", "special"}

// String returns the tip's value as Redis spells it ("" for the default).
func (p ResponsePolicy) String() string {
	if int(p) < len(responseNames) {
		return responseNames[p]
	}
	return "unknown"
}

// KeySpec is one Redis 7 key specification: where the search for keys
// begins (an index, or the argument after a keyword) and how the keys are
// found from there (a range, or a count read from a numkeys argument).
type KeySpec struct {
	Flags KeySpecFlag

	BeginSearch BeginSearch
	Index       int    // BeginIndex: position of the first key
	Keyword     string // BeginKeyword: the keyword, upper case as Redis lists it
	StartFrom   int    // BeginKeyword: where to start looking; negative counts from the end, searching backwards

	FindKeys  FindKeys
	LastKey   int // FindRange: last key relative to the first; negative counts from the end
	KeyStep   int // FindRange and FindKeynum: distance between keys
	Limit     int // FindRange with LastKey -1: only 1/Limit of the remaining arguments are keys
	KeynumIdx int // FindKeynum: position of numkeys relative to the begin-search result
	FirstKey  int // FindKeynum: position of the first key relative to the begin-search result
}

// BeginSearch is the kind of a key spec's begin_search.
type BeginSearch uint8

const (
	BeginUnknown BeginSearch = iota
	BeginIndex
	BeginKeyword
)

// FindKeys is the kind of a key spec's find_keys.
type FindKeys uint8

const (
	FindUnknown FindKeys = iota
	FindRange
	FindKeynum
)

// KeySpecFlag is a set of key spec flags.
type KeySpecFlag uint16

// Key spec flags, named after Redis's.
const (
	KeyRO KeySpecFlag = 1 << iota
	KeyRW
	KeyOW
	KeyRM
	KeyAccess
	KeyUpdate
	KeyInsert
	KeyDelete
	KeyNotKey
	KeyIncomplete
	KeyVariableFlags
)

var keySpecFlagNames = [...]string{"RO", "RW", "OW", "RM", "access", "update",
	"insert", "delete", "not_key", "incomplete", "variable_flags"}

// String returns the flags as Redis names them, space separated.
func (f KeySpecFlag) String() string { return bitNames(uint64(f), keySpecFlagNames[:], "") }
