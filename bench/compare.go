package bench

import (
	"context"
	"fmt"
	"strings"
)

// Comparison is the same load run against the proxy and against a direct
// redis-server.
type Comparison struct {
	Proxy, Direct Result
	// Ratio is Proxy.OpsPerSec / Direct.OpsPerSec; 0 when the direct run
	// completed nothing.
	Ratio float64
}

// Compare runs cfg against proxyAddr, then the same cfg against directAddr
// (cfg.Addr is ignored), and reports both and the ratio of their
// throughputs. The runs are sequential so they do not compete for the CPU.
//
// Both runs write the same keys. When the direct server is also a shard
// behind the proxy, the second run's GETs find more of their keys; over a
// few seconds at the default keyspace both runs fill it almost at once, so
// the bias is small, but a very short run with a large keyspace can show it.
//
// If a run fails, Compare returns the error with what it measured so far.
func Compare(ctx context.Context, cfg Config, proxyAddr, directAddr string) (Comparison, error) {
	var c Comparison
	var err error
	cfg.Addr = proxyAddr
	if c.Proxy, err = Run(ctx, cfg); err != nil {
		return c, fmt.Errorf("compare: proxy run: %w", err)
	}
	cfg.Addr = directAddr
	if c.Direct, err = Run(ctx, cfg); err != nil {
		return c, fmt.Errorf("compare: direct run: %w", err)
	}
	if c.Direct.OpsPerSec > 0 {
		c.Ratio = c.Proxy.OpsPerSec / c.Direct.OpsPerSec
	}
	return c, nil
}

// String formats both results and the ratio. A run that did not complete
// (Compare failed) is left out.
func (c Comparison) String() string {
	var b strings.Builder
	if c.Proxy.Latency != nil {
		b.WriteString("proxy:  ")
		b.WriteString(c.Proxy.String())
	}
	if c.Direct.Latency != nil {
		b.WriteString("direct: ")
		b.WriteString(c.Direct.String())
		fmt.Fprintf(&b, "proxy/direct ops/s: %.3f", c.Ratio)
		if c.Proxy.P50 > 0 && c.Direct.P50 > 0 {
			fmt.Fprintf(&b, "  (p50 latency proxy/direct: %.2f)", float64(c.Proxy.P50)/float64(c.Direct.P50))
		}
		b.WriteString("\n")
	}
	return b.String()
}
