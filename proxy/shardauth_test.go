package proxy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseTargetArgs(t *testing.T) {
	for _, tc := range []struct {
		args    string
		targets []string
		options map[string]bool
		auth    *shardAuth
		err     string
	}{
		{args: "a:1 b:2", targets: []string{"a:1", "b:2"}},
		{args: "a:1 MANUAL b:2 flush", targets: []string{"a:1", "b:2"}, options: map[string]bool{"manual": true, "flush": true}},
		{args: "a:1 AUTH pw", targets: []string{"a:1"}, auth: &shardAuth{password: "pw"}},
		{args: "a:1 auth2 user pw FLUSH", targets: []string{"a:1"}, options: map[string]bool{"flush": true}, auth: &shardAuth{"user", "pw"}},
		{args: "AUTH b:2 a:1", targets: []string{"a:1"}, auth: &shardAuth{password: "b:2"}},       // the word after AUTH is the password
		{args: "a:1 AUTH MANUAL", targets: []string{"a:1"}, auth: &shardAuth{password: "MANUAL"}}, // even an option word
		{args: "a:1 AUTH", err: "syntax error: AUTH needs a password"},
		{args: "a:1 AUTH2 user", err: "syntax error: AUTH2 needs a username and a password"},
		{args: "a:1 AUTH2", err: "syntax error: AUTH2 needs a username and a password"},
		{args: "a:1 AUTH x AUTH2 u y", err: "syntax error: AUTH or AUTH2 given twice"},
		{args: "a:1 replace", targets: []string{"a:1", "replace"}}, // not an option of this command
	} {
		t.Run(tc.args, func(t *testing.T) {
			var args [][]byte
			for _, a := range strings.Fields(tc.args) {
				args = append(args, []byte(a))
			}
			got, err := parseTargetArgs(args, "manual", "flush")
			if tc.err != "" {
				if err == nil || err.Error() != tc.err || !errors.Is(err, errSyntax) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.options == nil {
				tc.options = map[string]bool{}
			}
			if !reflect.DeepEqual(got.targets, tc.targets) || !reflect.DeepEqual(got.options, tc.options) || !reflect.DeepEqual(got.auth, tc.auth) {
				t.Errorf("got targets %q, options %v, auth %v; want %q, %v, %v", got.targets, got.options, got.auth, tc.targets, tc.options, tc.auth)
			}
		})
	}
}
