package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// sizeValue is a byte count flag that reads Redis's memory units as
// redis.conf does, in any case: 1k is 1000 bytes and 1kb 1024, and the
// same for m, mb, g and gb; a bare number is bytes.
type sizeValue struct{ p *int64 }

var _ pflag.Value = sizeValue{}

// sizeVar defines a size flag on fs, as fs.Int64Var does.
func sizeVar(fs *pflag.FlagSet, p *int64, name string, value int64, usage string) {
	*p = value
	fs.Var(sizeValue{p}, name, usage)
}

func (v sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

func (v sizeValue) String() string { return formatSize(*v.p) }
func (v sizeValue) Type() string   { return "size" }

var sizeUnits = []struct {
	suffix string
	mult   int64
}{ // longer suffixes first: "kb" before "b"
	{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10},
	{"g", 1e9}, {"m", 1e6}, {"k", 1e3}, {"b", 1},
}

func parseSize(s string) (int64, error) {
	num, mult := strings.ToLower(strings.TrimSpace(s)), int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSuffix(num, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || num == "" || num[0] == '+' {
		return 0, fmt.Errorf("%q is not a size: a whole number of bytes, or one followed by k, kb, m, mb, g or gb", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// formatSize writes n in the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range sizeUnits[:3] {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
