// Package sentinel follows Redis Sentinel for shards given as
// sentinel:NAME: it names each one's current primary and reports the
// failovers the sentinels run, following Sentinel's client rules.
//
// A primary is asked of every sentinel at once (SENTINEL MASTER NAME);
// the answer counts once a majority of the sentinels have replied, and is
// the address of the reply with the highest config epoch (the epoch of the
// last failover a sentinel has seen: a sentinel that has not heard of the
// latest failover yet answers with an older one). Whoever dials the address
// confirms with ROLE that it is a primary; the caller does that on every
// reconnect (proxy/internal/backend).
//
// A Watcher subscribes on every sentinel to the events of a failover:
// +selected-slave (a replica was chosen; the leader sends it REPLICAOF NO
// ONE on its next tick, about 100 ms later), +switch-master (the failover
// is done) and the ends of an aborted one, and polls the primaries every
// Poll as a fallback for a lost subscription.
package sentinel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Prefix marks a shard address that names a Sentinel master.
const Prefix = "sentinel:"

// Name returns the master name of a sentinel:NAME address.
func Name(addr string) (string, bool) {
	return strings.CutPrefix(addr, Prefix)
}

// ValidName reports whether name can be a Sentinel master name in a
// topology spec: letters, digits and ._- (Sentinel allows more, but a
// spec's separators must stay unambiguous).
func ValidName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// Config is what a Watcher needs.
type Config struct {
	// Addrs are the sentinels, HOST:PORT each.
	Addrs []string
	// Username and Password authenticate to the sentinels (their own
	// requirepass), if they need it.
	Username, Password string
	// Timeout bounds each request to a sentinel.
	Timeout time.Duration
	// Poll is how often the primaries followed are asked again, in case an
	// event was missed.
	Poll time.Duration
	Log  *zap.Logger
}

// EventKind is what a failover event says.
type EventKind int

const (
	// Starting: the sentinels chose a replica to promote; the current
	// primary is about to stop being the only one.
	Starting EventKind = iota
	// Switched: the master has a new address (Addr).
	Switched
	// Aborted: the failover started was given up; the primary stays.
	Aborted
)

func (k EventKind) String() string {
	return [...]string{"starting", "switched", "aborted"}[k]
}

// Event is a change to one master followed.
type Event struct {
	Name string
	Kind EventKind
	Addr string // the primary's address after a switch
}

// Watcher follows the masters of a set of sentinels.
type Watcher struct {
	cfg     Config
	clients []*redis.SentinelClient
	on      func(Event)

	mu      sync.Mutex
	primary map[string]known // name -> its primary, as last resolved

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Watcher; it asks and subscribes to nothing until Follow.
// on receives every event for the names followed, on one goroutine at a
// time per sentinel; Switched only once per new address, whichever
// sentinel or poll saw it first.
func New(cfg Config, on func(Event)) (*Watcher, error) {
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("sentinel:NAME shards need --sentinels")
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, 2*time.Second)
	cfg.Poll = cmp.Or(cfg.Poll, time.Second)
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	w := &Watcher{cfg: cfg, on: on, primary: map[string]known{}}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	for _, a := range cfg.Addrs {
		w.clients = append(w.clients, redis.NewSentinelClient(&redis.Options{
			Addr: a, Username: cfg.Username, Password: cfg.Password, Protocol: 2,
			DisableIdentity: true, DialTimeout: cfg.Timeout, ReadTimeout: cfg.Timeout,
			WriteTimeout: cfg.Timeout, MaxRetries: -1,
		}))
	}
	return w, nil
}

// Follow starts the subscriptions and the poll for names (once; later
// calls add names to the poll).
func (w *Watcher) Follow(names ...string) {
	w.mu.Lock()
	first := len(w.primary) == 0
	for _, n := range names {
		if _, ok := w.primary[n]; !ok {
			w.primary[n] = known{}
		}
	}
	w.mu.Unlock()
	if !first {
		return
	}
	for _, c := range w.clients {
		w.wg.Add(1)
		go w.subscribe(c)
	}
	w.wg.Add(1)
	go w.poll()
}

// Close stops following and closes the sentinel clients.
func (w *Watcher) Close() {
	w.cancel()
	w.wg.Wait()
	for _, c := range w.clients {
		c.Close()
	}
}

// Primary returns the address last resolved for name, resolving it if
// there is none yet.
func (w *Watcher) Primary(ctx context.Context, name string) (string, error) {
	w.mu.Lock()
	addr := w.primary[name].addr
	w.mu.Unlock()
	if addr != "" {
		return addr, nil
	}
	return w.Resolve(ctx, name)
}

// Replica is a replica of a master as the sentinels list it.
type Replica struct {
	Addr string
	// Down: a sentinel that lists it flags it down or disconnected
	Down bool
}

// Replicas returns name's replicas that any sentinel lists (SENTINEL
// REPLICAS), once a majority of the sentinels has answered.
func (w *Watcher) Replicas(ctx context.Context, name string) ([]Replica, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	lists := make([][]map[string]string, len(w.clients))
	errs := make([]error, len(w.clients))
	var wg sync.WaitGroup
	for i, c := range w.clients {
		wg.Go(func() { lists[i], errs[i] = c.Replicas(ctx, name).Result() })
	}
	wg.Wait()
	var out []Replica
	replied := 0
	for i, l := range lists {
		if errs[i] != nil {
			continue
		}
		replied++
		for _, r := range l {
			if r["ip"] == "" {
				continue
			}
			a := net.JoinHostPort(r["ip"], r["port"])
			j := slices.IndexFunc(out, func(o Replica) bool { return o.Addr == a })
			if j < 0 {
				out, j = append(out, Replica{Addr: a}), len(out)
			}
			for _, f := range strings.Split(r["flags"], ",") {
				if f == "s_down" || f == "o_down" || f == "disconnected" {
					out[j].Down = true
				}
			}
		}
	}
	if need := len(w.clients)/2 + 1; replied < need {
		return nil, fmt.Errorf("sentinel replicas of %s: %d of %d sentinels answered, %d needed: %w",
			name, replied, len(w.clients), need, errors.Join(errs...))
	}
	return out, nil
}

// known is a master's primary as resolved: its address, and the config
// epoch it came with, so that an answer older than one already taken (two
// resolutions finishing out of order) is not taken.
// Known returns the primary last resolved for name, without asking.
func (w *Watcher) Known(name string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := w.primary[name]
	return k.addr, k.addr != ""
}

type known struct {
	addr  string
	epoch int64
}

type answer struct {
	addr  string
	epoch int64
	err   error
}

// Resolve asks every sentinel for name's primary and returns the address
// with the highest config epoch among the replies, once a majority of
// the sentinels has replied.
func (w *Watcher) Resolve(ctx context.Context, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	answers := make([]answer, len(w.clients))
	var wg sync.WaitGroup
	for i, c := range w.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = ask(ctx, c, name)
		}()
	}
	wg.Wait()
	var best answer
	replied := 0
	var errs []error
	for i, a := range answers {
		if a.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", w.cfg.Addrs[i], a.err))
			continue
		}
		replied++
		if best.addr == "" || a.epoch > best.epoch {
			best = a
		}
	}
	if need := len(w.clients)/2 + 1; replied < need {
		return "", fmt.Errorf("sentinel master %s: %d of %d sentinels named a primary, %d needed: %w",
			name, replied, len(w.clients), need, errors.Join(errs...))
	}
	return w.learn(name, best.addr, best.epoch), nil
}

// learn records addr as name's primary unless one of a later epoch is
// known, reports a switch if it is a new one, and returns the primary.
func (w *Watcher) learn(name, addr string, epoch int64) string {
	w.mu.Lock()
	prev, followed := w.primary[name]
	if epoch < prev.epoch {
		w.mu.Unlock()
		return cmp.Or(prev.addr, addr)
	}
	w.primary[name] = known{addr, epoch}
	w.mu.Unlock()
	if followed && prev.addr != "" && prev.addr != addr {
		w.cfg.Log.Warn("sentinel master switched", zap.String("master", name),
			zap.String("from", prev.addr), zap.String("to", addr))
		w.on(Event{Name: name, Kind: Switched, Addr: addr})
	}
	return addr
}

func ask(ctx context.Context, c *redis.SentinelClient, name string) answer {
	m, err := c.Master(ctx, name).Result()
	if err != nil {
		return answer{err: err}
	}
	ip, port := m["ip"], m["port"]
	if ip == "" || port == "" {
		return answer{err: fmt.Errorf("no address for master %s", name)}
	}
	epoch, _ := strconv.ParseInt(m["config-epoch"], 10, 64)
	return answer{addr: net.JoinHostPort(ip, port), epoch: epoch}
}

// subscribe follows one sentinel's failover events until Close.
func (w *Watcher) subscribe(c *redis.SentinelClient) {
	defer w.wg.Done()
	for w.ctx.Err() == nil {
		ps := c.PSubscribe(w.ctx, "+switch-master", "+selected-slave", "-failover-abort-*", "+failover-end-for-timeout")
		ch := ps.Channel(redis.WithChannelHealthCheckInterval(w.cfg.Timeout))
	read:
		for {
			select {
			case <-w.ctx.Done():
				break read
			case msg, ok := <-ch:
				if !ok {
					break read
				}
				w.event(msg.Channel, msg.Payload)
			}
		}
		ps.Close()
		select {
		case <-w.ctx.Done():
		case <-time.After(w.cfg.Poll):
		}
	}
}

// event acts on one published event. Formats (sentinel.c, "%@" is
// "<type> <name> <ip> <port> [@ <master> <ip> <port>]"):
//
//	+switch-master <master> <old ip> <old port> <new ip> <new port>
//	+selected-slave slave <ip:port> <ip> <port> @ <master> <ip> <port>
//	-failover-abort-... master <master> <ip> <port>
func (w *Watcher) event(channel, payload string) {
	f := strings.Fields(payload)
	var name string
	switch {
	case channel == "+switch-master" && len(f) >= 5:
		name = f[0]
	case channel == "+selected-slave" && len(f) >= 6 && f[4] == "@":
		name = f[5]
	case len(f) >= 2 && f[0] == "master":
		name = f[1]
	default:
		return
	}
	w.mu.Lock()
	_, followed := w.primary[name]
	w.mu.Unlock()
	if !followed {
		return
	}
	switch channel {
	case "+selected-slave":
		w.cfg.Log.Warn("sentinel failover starting", zap.String("master", name), zap.String("promoting", f[1]))
		w.on(Event{Name: name, Kind: Starting})
	case "+switch-master":
		// the leader's word; confirm with the majority, whose highest
		// epoch is the leader's once it is among the replies
		if _, err := w.Resolve(w.ctx, name); err != nil {
			w.cfg.Log.Warn("sentinel master switched, but resolving it failed", zap.String("master", name), zap.Error(err))
		}
	default:
		w.cfg.Log.Warn("sentinel failover aborted", zap.String("master", name), zap.String("event", channel))
		w.on(Event{Name: name, Kind: Aborted})
	}
}

// poll resolves every name followed each Poll.
func (w *Watcher) poll() {
	defer w.wg.Done()
	tick := time.NewTicker(w.cfg.Poll)
	defer tick.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-tick.C:
		}
		w.mu.Lock()
		names := make([]string, 0, len(w.primary))
		for n := range w.primary {
			names = append(names, n)
		}
		w.mu.Unlock()
		for _, n := range names {
			if _, err := w.Resolve(w.ctx, n); err != nil && w.ctx.Err() == nil {
				w.cfg.Log.Debug("sentinel poll", zap.String("master", n), zap.Error(err))
			}
		}
	}
}
