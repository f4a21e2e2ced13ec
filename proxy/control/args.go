package control

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/reshard/reshard/proxy"
)

// The arguments PROXY RESHARD and PROXY RESTORE share.

// errSyntax prefixes the parse errors of the admin commands' arguments, as
// Redis words them.
var errSyntax = errors.New("syntax error")

// targetArgs is the tail of PROXY RESHARD and PROXY RESTORE: the targets
// (HOST:PORT[=RANGES] each), option words, and the targets' credentials
// as Redis's MIGRATE takes them.
type targetArgs struct {
	targets []string
	options map[string]bool // the option words given, lowercase
	auth    *proxy.Auth     // nil: neither AUTH nor AUTH2 was given
	db      int             // DB n, where "db" is an option; -1 if not given
	rate    int64           // RATE n, where "rate" is an option; 0 if not given
}

// parseTargetArgs reads TARGET... [OPTION...] [AUTH password | AUTH2
// username password] in any order, options being the words allowed; the
// option "db" takes a database number (DB n), "rate" keys per second
// (RATE n). The
// argument after AUTH is the password, whatever it looks like, never a
// target, so it can never show in an error about targets.
func parseTargetArgs(args [][]byte, options ...string) (targetArgs, error) {
	ta := targetArgs{options: map[string]bool{}, db: -1}
	for i := 0; i < len(args); i++ {
		word := strings.ToLower(string(args[i]))
		switch {
		case word == "auth" || word == "auth2":
			if ta.auth != nil {
				return ta, fmt.Errorf("%w: AUTH or AUTH2 given twice", errSyntax)
			}
			auth, n, err := parseAuth(word, args[i+1:])
			if err != nil {
				return ta, err
			}
			ta.auth, i = &auth, i+n
		case word == "db" && slices.Contains(options, word):
			if ta.options[word] {
				return ta, fmt.Errorf("%w: DB given twice", errSyntax)
			}
			if i+1 == len(args) {
				return ta, fmt.Errorf("%w: DB needs a database number", errSyntax)
			}
			n, err := strconv.Atoi(string(args[i+1]))
			if err != nil || n < 0 {
				return ta, fmt.Errorf("%w: DB %q is not a database number", errSyntax, args[i+1])
			}
			ta.options[word], ta.db, i = true, n, i+1
		case word == "rate" && slices.Contains(options, word):
			if ta.options[word] {
				return ta, fmt.Errorf("%w: RATE given twice", errSyntax)
			}
			if i+1 == len(args) {
				return ta, fmt.Errorf("%w: RATE needs a number of keys per second", errSyntax)
			}
			n, err := strconv.ParseInt(string(args[i+1]), 10, 64)
			if err != nil || n < 0 {
				return ta, fmt.Errorf("%w: RATE %q is not a number of keys per second", errSyntax, args[i+1])
			}
			ta.options[word], ta.rate, i = true, n, i+1
		case slices.Contains(options, word):
			ta.options[word] = true
		default:
			ta.targets = append(ta.targets, string(args[i]))
		}
	}
	return ta, nil
}

// parseAuth reads the arguments of AUTH (password) or AUTH2 (username
// password) from rest and says how many it took.
func parseAuth(word string, rest [][]byte) (auth proxy.Auth, n int, err error) {
	if word == "auth" {
		if len(rest) < 1 {
			return auth, 0, fmt.Errorf("%w: AUTH needs a password", errSyntax)
		}
		return proxy.Auth{Password: string(rest[0])}, 1, nil
	}
	if len(rest) < 2 {
		return auth, 0, fmt.Errorf("%w: AUTH2 needs a username and a password", errSyntax)
	}
	return proxy.Auth{Username: string(rest[0]), Password: string(rest[1])}, 2, nil
}

// authOr is the credentials given, or else def.
func (ta targetArgs) authOr(def proxy.Auth) proxy.Auth {
	if ta.auth != nil {
		return *ta.auth
	}
	return def
}
