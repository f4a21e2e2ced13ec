package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().validate(); err != nil {
		t.Fatalf("DefaultConfig().validate() = %v", err)
	}
	tests := []struct {
		mutate func(*Config)
		want   string // the field and its value in the message
	}{
		{func(c *Config) { c.Addr = "" }, `Addr ""`},
		{func(c *Config) { c.Addr = "localhost" }, `Addr "localhost"`},
		{func(c *Config) { c.Conns = 0 }, "Conns 0"},
		{func(c *Config) { c.Conns = maxConns + 1 }, "Conns 10001"},
		{func(c *Config) { c.Pipeline = -3 }, "Pipeline -3"},
		{func(c *Config) { c.Keyspace = 0 }, "Keyspace 0"},
		{func(c *Config) { c.ReadRatio = 1.5 }, "ReadRatio 1.5"},
		{func(c *Config) { c.ReadRatio = math.NaN() }, "ReadRatio NaN"},
		{func(c *Config) { c.ValueSize = -1 }, "ValueSize -1"},
		{func(c *Config) { c.Duration = 0 }, "Duration 0s"},
		{func(c *Config) { c.Requests = -1 }, "Requests -1"},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.mutate(&c)
		err := c.validate()
		if err == nil {
			t.Errorf("want an error naming %s, got nil", tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error %q does not name %s", err, tt.want)
		}
	}
	c := DefaultConfig()
	c.Requests, c.Duration, c.ReadRatio, c.ValueSize = 10, time.Second, 0, 0
	if err := c.validate(); err != nil {
		t.Errorf("edge values rejected: %v", err)
	}
}

func TestBudget(t *testing.T) {
	b := &budget{limit: 10}
	var got []int
	for range 5 {
		got = append(got, b.take(4))
	}
	if want := []int{4, 4, 2, 0, 0}; !equalInts(got, want) {
		t.Errorf("take(4) five times = %v, want %v", got, want)
	}
	unlimited := &budget{}
	if got := unlimited.take(7); got != 7 {
		t.Errorf("unlimited take(7) = %d", got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
