package command

import "errors"

// Errors Keys returns for a bad numkeys argument. Their text is Redis's
// reply for the same mistake (without the leading "-"), so the proxy can
// send err.Error() to the client as Redis would. Which one a command uses
// follows that command's implementation in Redis 7.0 (EVAL and FCALL
// word "not a number" differently, ZUNION and LMPOP "too many keys").
var (
	ErrNotInteger         = errors.New("ERR value is not an integer or out of range")
	ErrSyntax             = errors.New("ERR syntax error")
	ErrNumkeysNegative    = errors.New("ERR Number of keys can't be negative")
	ErrNumkeysTooMany     = errors.New("ERR Number of keys can't be greater than number of args")
	ErrNumkeysBad         = errors.New("ERR Bad number of keys provided")
	ErrNumkeysNotPositive = errors.New("ERR numkeys should be greater than 0")
)

// numkeysErrors is how one numkeys command words its three mistakes: a
// numkeys that is not an integer, one below min, and one that names more
// keys than there are arguments.
type numkeysErrors struct {
	min                     int64
	notInt, tooFew, tooMany error
}

var (
	evalNumkeys    = numkeysErrors{0, ErrNotInteger, ErrNumkeysNegative, ErrNumkeysTooMany}
	fcallNumkeys   = numkeysErrors{0, ErrNumkeysBad, ErrNumkeysNegative, ErrNumkeysTooMany}
	sintercardNum  = numkeysErrors{1, ErrNumkeysNotPositive, ErrNumkeysNotPositive, ErrNumkeysTooMany}
	mpopNumkeys    = numkeysErrors{1, ErrNumkeysNotPositive, ErrNumkeysNotPositive, ErrSyntax}
	defaultNumkeys = evalNumkeys
)

// numkeysByName lists every Redis 7.0 command whose key spec is of the
// keynum kind; TestNumkeysErrorsComplete keeps it complete.
func numkeysByName(name string) *numkeysErrors {
	switch name {
	case "eval", "eval_ro", "evalsha", "evalsha_ro":
		return &evalNumkeys
	case "fcall", "fcall_ro":
		return &fcallNumkeys
	case "sintercard":
		return &sintercardNum
	case "lmpop", "blmpop", "zmpop", "bzmpop":
		return &mpopNumkeys
	case "zunion", "zinter", "zdiff", "zintercard", "zunionstore", "zinterstore", "zdiffstore":
		// zunionInterDiffGenericCommand names the command in its error.
		return &numkeysErrors{1, ErrNotInteger,
			errors.New("ERR at least 1 input key is needed for '" + name + "' command"), ErrSyntax}
	}
	return nil
}

// keysFallbackByName returns the per-command key finder for the commands
// whose key specs Redis itself marks incomplete or unknown, in which case
// Redis (and Keys) use a getkeys procedure instead.
func keysFallbackByName(name string) func(args [][]byte, dst []int) []int {
	switch name {
	case "sort":
		return sortKeys
	case "sort_ro":
		return sortROKeys
	case "migrate":
		return migrateKeys
	}
	return nil
}

// Keys appends to dst the index in args of every key argument, args[0]
// being the command name, and returns the extended slice. Commands without
// keys return dst unchanged.
//
// Arguments that fail the arity check have no keys: Redis rejects them
// before it looks for keys. Otherwise Keys follows the key specs as Redis's
// getKeysUsingKeySpecs does: when a spec
// does not fit the arguments (an arity or syntax error the command itself
// will report) the command has no keys, and for SORT, SORT_RO and MIGRATE,
// whose specs Redis marks incomplete, it falls back to code mirroring
// Redis's getkeys procedures. A bad numkeys argument (EVAL, FCALL, ZUNION,
// LMPOP, SINTERCARD, ...) is an error worded as the command would reply;
// dst is then returned unchanged.
//
// Keys does not allocate unless dst must grow.
func (i *Info) Keys(args [][]byte, dst []int) ([]int, error) {
	return i.keys(args, dst, false)
}

// RoutingKeys is Keys plus the arguments that are not keys but that Redis
// Cluster routes by slot all the same: the shard channels of SPUBLISH,
// SSUBSCRIBE and SUNSUBSCRIBE (key specs flagged not_key). Redis Cluster
// uses the same rule to pick a command's node.
func (i *Info) RoutingKeys(args [][]byte, dst []int) ([]int, error) {
	return i.keys(args, dst, true)
}

func (i *Info) keys(args [][]byte, dst []int, notKeys bool) ([]int, error) {
	n0 := len(dst)
	argc := len(args)
	if !i.ArityOK(argc) {
		return dst, nil
	}
	for s := range i.keySpecs {
		ks := &i.keySpecs[s]
		if ks.Flags&KeyNotKey != 0 && !notKeys {
			continue
		}
		var first int
		switch ks.BeginSearch {
		case BeginIndex:
			first = ks.Index
		case BeginKeyword:
			first = keywordSearch(args, ks.Keyword, ks.StartFrom)
			if first == 0 {
				continue // keyword absent: this spec has no keys here
			}
		default:
			return i.fallback(args, dst[:n0]), nil
		}

		var last, step int
		switch ks.FindKeys {
		case FindRange:
			step = ks.KeyStep
			switch {
			case ks.LastKey >= 0:
				last = first + ks.LastKey
			case ks.Limit <= 0:
				last = argc + ks.LastKey
			default:
				// Only 1/Limit of what follows are keys (XREAD
				// STREAMS k1 k2 id1 id2).
				last = first + ((argc-first)/ks.Limit + ks.LastKey)
			}
		case FindKeynum:
			step = ks.KeyStep
			idx := first + ks.KeynumIdx
			if idx < 1 || idx >= argc {
				return i.fallback(args, dst[:n0]), nil
			}
			ne := i.numkeys
			if ne == nil {
				ne = &defaultNumkeys
			}
			n, ok := parseInt(args[idx])
			if !ok {
				return dst[:n0], ne.notInt
			}
			if n < ne.min {
				return dst[:n0], ne.tooFew
			}
			first += ks.FirstKey
			if step < 1 {
				step = 1
			}
			if n == 0 {
				// Valid (EVAL with no keys) but no keys from here.
				continue
			}
			if first >= argc || n-1 > int64(argc-1-first)/int64(step) {
				return dst[:n0], ne.tooMany
			}
			last = first + int(n-1)*step
		default:
			return i.fallback(args, dst[:n0]), nil
		}
		if step < 1 {
			step = 1
		}
		if first < 1 || first >= argc || last >= argc || last < first {
			return i.fallback(args, dst[:n0]), nil
		}
		for k := first; k <= last; k += step {
			dst = append(dst, k)
		}
		if ks.Flags&KeyIncomplete != 0 {
			return i.fallback(args, dst[:n0]), nil
		}
	}
	return dst, nil
}

// fallback is what Redis does when a key spec is invalid for the arguments
// or incomplete: run the command's getkeys procedure, or report no keys.
func (i *Info) fallback(args [][]byte, dst []int) []int {
	if i.keysFallback == nil {
		return dst
	}
	return i.keysFallback(args, dst)
}

// keywordSearch returns the index after the keyword, or 0. A positive
// startfrom searches forwards from it, a negative one backwards from
// len(args)+startfrom; like Redis, neither looks at the last argument
// (nothing could follow it) nor at args[1] when searching backwards.
func keywordSearch(args [][]byte, keyword string, startfrom int) int {
	argc := len(args)
	if startfrom > 0 {
		for k := startfrom; k < argc-1; k++ {
			if equalFold(args[k], keyword) {
				return k + 1
			}
		}
		return 0
	}
	for k := argc + startfrom; k > 1; k-- {
		if k >= argc {
			return 0
		}
		if equalFold(args[k], keyword) {
			return k + 1
		}
	}
	return 0
}

// sortKeys mirrors Redis's sortGetKeys: the sorted key, and the argument
// after the last STORE, skipping the arguments of LIMIT, GET and BY so
// that "GET store" is not taken for the option.
func sortKeys(args [][]byte, dst []int) []int {
	if len(args) < 2 {
		return dst
	}
	dst = append(dst, 1)
	store := 0
	for k := 2; k < len(args); k++ {
		a := args[k]
		switch {
		case equalFold(a, "limit"):
			k += 2
		case equalFold(a, "store") && k+1 < len(args):
			// No skip: Redis looks at the next argument as an option
			// too, and the last STORE wins.
			store = k + 1
		case equalFold(a, "get"), equalFold(a, "by"):
			k++
		}
	}
	if store > 0 {
		dst = append(dst, store)
	}
	return dst
}

// sortROKeys mirrors Redis's sortROGetKeys: only the sorted key. The keys
// BY and GET patterns name are not knowable from the arguments.
func sortROKeys(args [][]byte, dst []int) []int {
	if len(args) < 2 {
		return dst
	}
	return append(dst, 1)
}

// migrateKeys mirrors Redis's migrateGetKeys: MIGRATE host port key db
// timeout, or, with an empty key, every argument after the KEYS option.
func migrateKeys(args [][]byte, dst []int) []int {
	argc := len(args)
	if argc < 4 {
		return dst
	}
	first, num := 3, 1
	for k := 6; k < argc; k++ {
		a := args[k]
		if equalFold(a, "keys") {
			if len(args[3]) > 0 {
				num = 0 // syntax error, left for MIGRATE to report
			} else {
				first, num = k+1, argc-k-1
			}
			break
		}
		switch {
		case equalFold(a, "auth"):
			k++
		case equalFold(a, "auth2"):
			k += 2
		}
	}
	for k := first; k < first+num; k++ {
		dst = append(dst, k)
	}
	return dst
}

// equalFold reports whether b equals the ASCII string s ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for k := 0; k < len(b); k++ {
		c, d := b[k], s[k]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// parseInt parses a 64-bit integer as Redis's string2ll does: an optional
// minus sign, no plus sign, no spaces, no leading zeros.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if v > (1<<64-1)/10 {
			return 0, false
		}
		v *= 10
		if v > 1<<64-1-uint64(c-'0') {
			return 0, false
		}
		v += uint64(c - '0')
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true // -(1<<63) wraps to itself, as intended
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}
