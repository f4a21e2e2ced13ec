package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// --log-format json writes one JSON object per line, with the level, the
// message and the fields; console writes readable lines; anything else is
// refused.
func TestLogFormat(t *testing.T) {
	if _, err := loggerConfig("info", "xml"); err == nil || !strings.Contains(err.Error(), "--log-format must be console or json") {
		t.Fatalf("--log-format xml: %v", err)
	}
	for _, format := range []string{"json", "console"} {
		cfg, err := loggerConfig("info", format)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "log")
		cfg.OutputPaths = []string{path}
		log, err := cfg.Build()
		if err != nil {
			t.Fatal(err)
		}
		log.Info("reshard started", zap.String("job", "r-1"))
		log.Sync()
		out, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var entry map[string]any
		err = json.Unmarshal(out, &entry)
		switch {
		case format == "json" && (err != nil || entry["msg"] != "reshard started" || entry["job"] != "r-1" || entry["level"] != "info"):
			t.Errorf("json line %q: %v, %v", out, entry, err)
		case format == "console" && (err == nil || !strings.Contains(string(out), "reshard started")):
			t.Errorf("console line %q", out)
		}
	}
}
