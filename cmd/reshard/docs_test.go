package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsNameFilesThatExist keeps the map of the code true: every Go file
// docs/DESIGN.md names (`proxy/barrier.go`, or `barrier.go` in a sentence
// about a package), and every file named by the command table's family
// comments (proxy/commands.go) and the proxy's package docs, must exist,
// so a newcomer who follows them lands on the code they describe.
func TestDocsNameFilesThatExist(t *testing.T) {
	root := "../.."
	var all []string // every Go file of the repository, relative to root
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			rel, _ := filepath.Rel(root, path)
			all = append(all, filepath.ToSlash(rel))
		}
		return nil
	})
	exists := func(name string) bool {
		for _, f := range all {
			if f == name || (!strings.Contains(name, "/") && filepath.Base(f) == name) {
				return true
			}
		}
		return false
	}
	goFile := regexp.MustCompile(`[A-Za-z0-9_./]*[A-Za-z0-9_]\.go\b`)
	for _, doc := range []string{"docs/DESIGN.md", "proxy/commands.go", "proxy/doc.go", "proxy/control/doc.go"} {
		text, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(text), "\n") {
			if strings.HasSuffix(doc, ".go") && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			for _, name := range goFile.FindAllString(line, -1) {
				name = strings.TrimPrefix(name, "./")
				if strings.Contains(name, "*") || name == "doc.go" || name == "go.go" {
					continue
				}
				if !exists(name) {
					t.Errorf("%s:%d names %s, which no file of the repository is", doc, i+1, name)
				}
			}
		}
	}
}
