package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's flag tables checked against --help, apart from the
// walkthrough (walkthrough_test.go), which runs the README's commands.

// The README's tables of flags are what --help says: the same flags, with
// the same defaults.
func TestReadmeFlags(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ command, heading string }{
		{"proxy", "### Flags of `reshard proxy`"},
		{"restore", "### Restore"},
	} {
		var help bytes.Buffer
		dispatch(t.Context(), []string{tt.command, "--help"}, &help, &help)
		got := readmeFlagTable(t, string(readme), tt.heading)
		want := helpFlags(help.String())
		for name, def := range want {
			readmeDef, ok := got[name]
			switch {
			case !ok:
				t.Errorf("README, %s: no row for --%s", tt.heading, name)
			case def != "" && readmeDef != def:
				t.Errorf("README, %s: --%s defaults to %q, --help says %q", tt.heading, name, readmeDef, def)
			case def == "" && !zeroDefault(readmeDef):
				t.Errorf("README, %s: --%s defaults to %q, --help says none", tt.heading, name, readmeDef)
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				t.Errorf("README, %s: --%s is not a flag of reshard %s", tt.heading, name, tt.command)
			}
		}
	}
}

var (
	helpFlagLine  = regexp.MustCompile(`^\s+--([a-z0-9-]+)\s`)
	helpFlagDef   = regexp.MustCompile(`\(default "?(.*?)"?\)$`)
	readmeFlagRow = regexp.MustCompile("`--([a-z0-9-]+)`")
)

// helpFlags reads flag names and their defaults ("" when --help shows
// none) from --help.
func helpFlags(help string) map[string]string {
	flags := map[string]string{}
	for _, l := range strings.Split(help, "\n") {
		if m := helpFlagLine.FindStringSubmatch(l); m != nil {
			def := ""
			if d := helpFlagDef.FindStringSubmatch(l); d != nil {
				def = d[1]
			}
			flags[m[1]] = def
		}
	}
	return flags
}

// readmeFlagTable reads the first table under heading: the flags of the
// first column and the defaults of the second (a row of two flags has two
// defaults, or one for both).
func readmeFlagTable(t *testing.T, readme, heading string) map[string]string {
	t.Helper()
	_, after, ok := strings.Cut(readme, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README: no %q", heading)
	}
	flags := map[string]string{}
	inTable := false
	for _, l := range strings.Split(after, "\n") {
		if !strings.HasPrefix(l, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(l, " | ")
		if len(cells) < 3 {
			continue
		}
		names := readmeFlagRow.FindAllStringSubmatch(cells[0], -1)
		defs := strings.Split(cells[1], ", ")
		for i, m := range names {
			def := defs[0]
			if len(defs) == len(names) {
				def = defs[i]
			}
			flags[m[1]] = strings.Trim(def, "`")
		}
	}
	if len(flags) == 0 {
		t.Fatalf("README: no table of flags under %q", heading)
	}
	return flags
}

// zeroDefault tells whether a README default says "none": zero, off, or
// a word in parentheses such as (empty).
func zeroDefault(s string) bool {
	return s == "0" || s == "off" || strings.HasPrefix(s, "(")
}
