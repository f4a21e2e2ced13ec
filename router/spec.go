package router

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/reshard/reshard/internal/sentinel"
)

// ParseSpec parses a topology spec (the format is in the package
// documentation) and validates it: addresses, duplicates, and that every
// slot is owned exactly once. The shards come back in the spec's order with their
// ranges sorted and merged, ready for NewTable. Errors name the offending
// entry, or the first slot missing or owned twice, and wrap ErrBadTopology.
func ParseSpec(spec string) ([]Shard, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, badTopology("empty topology spec")
	}
	return parseEntries(strings.Split(spec, ","))
}

// ParseShardArgs is ParseSpec for entries given one per argument, as admin
// commands receive them ("127.0.0.1:7001=0-8191", "127.0.0.1:7002=8192-16383").
func ParseShardArgs(args []string) ([]Shard, error) {
	if len(args) == 0 {
		return nil, badTopology("no shards given")
	}
	return parseEntries(args)
}

// FormatSpec writes shards as a topology spec. It does not validate; for
// shards from ParseSpec or Table.Shards it produces the canonical text
// (ranges sorted and merged, a one-slot range written "A"), and
// ParseSpec(FormatSpec(s)) gives s back.
func FormatSpec(shards []Shard) string {
	var b strings.Builder
	for i, sh := range shards {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(sh.Addr)
		for _, r := range sh.Replicas {
			b.WriteByte('+')
			b.WriteString(r)
		}
		if ranges := sh.RangeSpec(); ranges != "" {
			b.WriteByte('=')
			b.WriteString(ranges)
		}
	}
	return b.String()
}

// RangeSpec is the shard's slot ranges as a topology spec writes them
// after "=": "0-5460/8000".
func (sh Shard) RangeSpec() string {
	var b strings.Builder
	for j, r := range normalizeRanges(sh.Ranges) {
		if j > 0 {
			b.WriteByte('/')
		}
		writeRange(&b, r)
	}
	return b.String()
}

func writeRange(b *strings.Builder, r Range) {
	b.WriteString(strconv.Itoa(int(r.From)))
	if r.To != r.From {
		b.WriteByte('-')
		b.WriteString(strconv.Itoa(int(r.To)))
	}
}

// normalizeRanges returns a sorted copy of rs with touching ranges merged.
// Overlapping ranges are left apart so that NewTable still reports them.
func normalizeRanges(rs []Range) []Range {
	out := slices.Clone(rs)
	slices.SortFunc(out, func(a, b Range) int {
		if a.From != b.From {
			return int(a.From) - int(b.From)
		}
		return int(a.To) - int(b.To)
	})
	n := 0
	for _, r := range out {
		if n > 0 && out[n-1].To < NumSlots-1 && out[n-1].To+1 == r.From {
			out[n-1].To = r.To
			continue
		}
		out[n] = r
		n++
	}
	return out[:n]
}

func parseEntries(entries []string) ([]Shard, error) {
	shards := make([]Shard, len(entries))
	seen := make(map[string]string, len(entries)) // canonical addr -> entry
	withRanges, withoutRanges := "", ""
	for i, raw := range entries {
		entry := strings.TrimSpace(raw)
		if entry == "" {
			return nil, badTopology("topology entry %d is empty", i+1)
		}
		if strings.Contains(entry, ",") { // only from ParseShardArgs
			return nil, badTopology("topology entry %q: give one shard per argument, without commas", entry)
		}
		addrText, rangesText, hasRanges := strings.Cut(entry, "=")
		// PRIMARY+REPLICA+...: the first address is the shard's primary
		parts := strings.Split(addrText, "+")
		for j, part := range parts {
			addr, err := canonicalAddr(strings.TrimSpace(part))
			if err != nil {
				return nil, badTopology("topology entry %q: %v", entry, err)
			}
			if _, ok := sentinel.Name(addr); ok && len(parts) > 1 {
				return nil, badTopology("topology entry %q: a sentinel: shard's replicas are the ones Sentinel knows; list none", entry)
			}
			if prev, dup := seen[addr]; dup {
				return nil, badTopology("topology entry %q: address %s is already listed in entry %q", entry, addr, prev)
			}
			seen[addr] = entry
			if j == 0 {
				shards[i].Addr = addr
			} else {
				shards[i].Replicas = append(shards[i].Replicas, addr)
			}
		}
		if !hasRanges {
			withoutRanges = cmp.Or(withoutRanges, entry)
			continue
		}
		withRanges = cmp.Or(withRanges, entry)
		var err error
		if shards[i].Ranges, err = parseRanges(rangesText); err != nil {
			return nil, badTopology("topology entry %q: %v", entry, err)
		}
	}
	if withRanges != "" && withoutRanges != "" {
		return nil, badTopology("topology entry %q has slot ranges but entry %q has none: give ranges for every shard or for none", withRanges, withoutRanges)
	}
	if withoutRanges != "" {
		if len(shards) > NumSlots {
			return nil, badTopology("too many shards (%d for %d slots)", len(shards), NumSlots)
		}
		for i, r := range evenRanges(len(shards)) {
			shards[i].Ranges = []Range{r}
		}
	}
	t, err := NewTable(0, shards)
	if err != nil {
		return nil, err
	}
	return t.Shards(), nil
}

func parseRanges(text string) ([]Range, error) {
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("no slot ranges after '='")
	}
	parts := strings.Split(text, "/")
	out := make([]Range, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		fromText, toText, isRange := strings.Cut(p, "-")
		from, err := parseSlot(fromText, p)
		if err != nil {
			return nil, err
		}
		to := from
		if isRange {
			if to, err = parseSlot(toText, p); err != nil {
				return nil, err
			}
		}
		if from > to {
			return nil, fmt.Errorf("slot range %q ends before it starts", p)
		}
		out = append(out, Range{From: from, To: to})
	}
	return out, nil
}

func parseSlot(text, rangeText string) (uint16, error) {
	text = strings.TrimSpace(text)
	if text == "" || len(text) > 5 || strings.Trim(text, "0123456789") != "" {
		return 0, fmt.Errorf("bad slot range %q (want A-B or A with slots 0-16383)", rangeText)
	}
	n, _ := strconv.Atoi(text) // at most 5 digits: cannot fail
	if n >= NumSlots {
		return 0, fmt.Errorf("slot %s in %q is out of range 0-16383", text, rangeText)
	}
	return uint16(n), nil
}

// canonicalAddr validates HOST:PORT and returns it in one spelling per
// address, so that duplicates are caught however they are written: IP
// addresses in their shortest form (an IPv4-mapped IPv6 address as IPv4),
// host names in lower case, the port without leading zeros.
//
// sentinel:NAME names the primary Redis Sentinel knows by NAME; it passes
// unchanged once NAME is valid.
func canonicalAddr(s string) (string, error) {
	if name, ok := sentinel.Name(s); ok {
		if !sentinel.ValidName(name) {
			return "", fmt.Errorf("%q is not a Sentinel master name (letters, digits and ._-)", name)
		}
		return s, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("address %q is not HOST:PORT (write IPv6 as [::1]:6379)", s)
	}
	if port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
		return "", fmt.Errorf("port %q is not a number in 1-65535", port)
	}
	p, _ := strconv.Atoi(port) // at most 5 digits: cannot fail
	if p < 1 || p > math.MaxUint16 {
		return "", fmt.Errorf("port %s is out of range 1-65535", port)
	}
	port = strconv.Itoa(p)
	if host == "" {
		return "", fmt.Errorf("address %q has no host", s)
	}
	if strings.HasPrefix(s, "[") {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return "", fmt.Errorf("%q is not an IPv6 address", "["+host+"]")
		}
		if ip.Is4In6() {
			return net.JoinHostPort(ip.Unmap().String(), port), nil
		}
		return net.JoinHostPort(ip.String(), port), nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.JoinHostPort(ip.String(), port), nil
	}
	if !validHostname(host) {
		return "", fmt.Errorf("%q is not an IPv4 address or host name", host)
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

// validHostname accepts RFC 1123 names, plus '_' which some internal DNS
// setups use. A name whose last label is all digits is rejected: it is a
// mistyped IPv4 address ("10.0.0.256"), not a host.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

// evenRanges splits the slots among n shards (1 <= n <= NumSlots) exactly
// as redis-cli's clusterManagerCommandCreate does, including its use of
// single-precision float for the cursor: 3 shards get 0-5460, 5461-10922,
// 10923-16383. The last shard always ends at 16383.
func evenRanges(n int) []Range {
	out := make([]Range, n)
	perNode := float32(NumSlots) / float32(n)
	var cursor float32
	first := 0
	for i := range out {
		// Each float32 conversion rounds like C's float arithmetic does.
		last := int(math.Round(float64(float32(float32(cursor+perNode) - 1))))
		if last > NumSlots || i == n-1 {
			last = NumSlots - 1
		}
		if last < first {
			last = first
		}
		out[i] = Range{From: uint16(first), To: uint16(last)}
		first = last + 1
		cursor = float32(cursor + perNode)
	}
	return out
}
