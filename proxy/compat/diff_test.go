package compat

import (
	"strings"
	"testing"
)

func TestDiffJSON(t *testing.T) {
	for _, tc := range []struct {
		name, want, got string
		diff            string // a substring of the difference; "" for none
	}{
		{"equal", `[{"cmd":"get a","val":"1"}]`, `[{"cmd":"get a","val":"1"}]`, ""},
		{"equal after decoding", `[{"val":1,"cmd":"x"}]`, `[{"cmd":"x","val":1}]`, ""},
		{"value", `[{"cmd":"get a","val":"1"}]`, `[{"cmd":"get a","val":"2"}]`, `[0] (get a).val`},
		{"error", `[{"cmd":"x","val":null,"err":"CROSSSLOT"}]`, `[{"cmd":"x","val":null}]`, `[0] (x).err`},
		{"extra field", `[{"cmd":"x"}]`, `[{"cmd":"x","err":"E"}]`, `unexpected "E"`},
		{"length", `[1,2]`, `[1]`, `1 elements, want 2`},
		{"type", `[[1]]`, `[{"a":1}]`, `[0]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := diffJSON([]byte(tc.want), []byte(tc.got))
			if tc.diff == "" && got != "" || tc.diff != "" && !strings.Contains(got, tc.diff) {
				t.Errorf("diffJSON = %q, want one containing %q", got, tc.diff)
			}
		})
	}
}

func TestCrossSlotFallback(t *testing.T) {
	standalone := `[{"cmd":"a","val":1},{"cmd":"mset","val":"OK"},{"cmd":"dbsize","val":2}]`
	for _, tc := range []struct {
		name, cluster, want string
	}{
		{"no crossslot", `[{"cmd":"a","val":1},{"cmd":"b","val":2}]`, `[{"cmd":"a","val":1},{"cmd":"b","val":2}]`},
		{"step error", `[{"cmd":"a","val":1},{"cmd":"mset","val":null,"err":"CROSSSLOT Keys in request don't hash to the same slot"},{"cmd":"dbsize","val":0}]`, standalone},
		{"nested in a pipeline", `[{"cmd":"a","val":[{"err":"x"},{"err":"CROSSSLOT Keys"}]},{"cmd":"mset","val":"OK"}]`, standalone},
		{"cluster stops first", `[{"cmd":"a","val":1},{"cmd":"mset","err":"CROSSSLOT"}]`, `[{"cmd":"a","val":1},{"cmd":"mset","val":"OK"},{"cmd":"dbsize","val":2}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := crossSlotFallback([]byte(tc.cluster), []byte(standalone))
			if err != nil {
				t.Fatal(err)
			}
			if d := diffJSON([]byte(tc.want), got); d != "" {
				t.Errorf("crossSlotFallback: %s", d)
			}
		})
	}
}
