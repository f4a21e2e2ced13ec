package proxy_test

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proxytest"
)

const (
	loadClients  = 1000
	loadDuration = 30 * time.Second
	loadKeys     = 4 // per client; each round is a pipeline of 2*loadKeys commands
)

// heapAndGoroutines returns the heap in use after a full collection and the
// number of goroutines. The proxy runs in this process, so both include it.
func heapAndGoroutines() (heap uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, runtime.NumGoroutine()
}

// TestIntegrationLoad runs 1000 client connections with pipelined GET/SET
// traffic for 30 s. Every GET must return what its own connection last SET,
// with no error; after the clients leave, the heap and the goroutine count
// must come back near where they were.
func TestIntegrationLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s load test; skipped with -short")
	}
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	rc := dialRaw(t, c.Addr)
	clientsBefore := connectedClients(t, rc)
	heapBefore, goroutinesBefore := heapAndGoroutines()

	keepers := make([]*keeper, loadClients)
	for i := range keepers {
		conn, err := dialPipe(c.Addr)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		keepers[i] = newKeeper(conn, fmt.Sprintf("load:%d", i), loadKeys)
	}
	// The proxy accepts connections asynchronously to the dials returning.
	if !waitFor(5*time.Second, func() bool { return connectedClients(t, rc) == clientsBefore+loadClients }) {
		t.Errorf("connected_clients = %d with the load clients connected, want %d", connectedClients(t, rc), clientsBefore+loadClients)
	}

	var (
		rounds   atomic.Int64
		failures atomic.Int64
		mu       sync.Mutex
		first    []error
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(loadDuration)
	for _, kp := range keepers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := kp.step(); err != nil {
					failures.Add(1)
					mu.Lock()
					if len(first) < 10 {
						first = append(first, err)
					}
					mu.Unlock()
					return
				}
				rounds.Add(1)
			}
		}()
	}
	wg.Wait()
	var heapPeak uint64
	{
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heapPeak = ms.HeapInuse
	}
	for _, kp := range keepers {
		kp.conn.Close()
		kp.conn = nil // the test's own buffers must not count as the proxy's heap
	}
	n := rounds.Load()
	t.Logf("%d clients, %s: %d pipelines, %d commands, %.0f commands/s; heap in use %d MB at the end of the load",
		loadClients, loadDuration, n, n*2*loadKeys, float64(n*2*loadKeys)/loadDuration.Seconds(), heapPeak>>20)
	if f := failures.Load(); f > 0 {
		t.Errorf("%d of %d clients failed; first errors:", f, loadClients)
		for _, err := range first {
			t.Error(err)
		}
	}
	if n < loadClients {
		t.Errorf("only %d pipelines completed; the load did not run", n)
	}

	// Closed clients leave the proxy asynchronously: poll for a while.
	var heapAfter uint64
	var goroutinesAfter int
	settled := waitFor(15*time.Second, func() bool {
		heapAfter, goroutinesAfter = heapAndGoroutines()
		return goroutinesAfter <= goroutinesBefore+10 && heapAfter < heapBefore+64<<20
	})
	t.Logf("heap in use %d MB before, %d MB after; goroutines %d before, %d after",
		heapBefore>>20, heapAfter>>20, goroutinesBefore, goroutinesAfter)
	if !settled {
		if goroutinesAfter > goroutinesBefore+10 {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutines: %d before the load, %d after the clients left (leak?); a sample:\n%.8000s", goroutinesBefore, goroutinesAfter, buf)
		}
		if heapAfter >= heapBefore+64<<20 {
			t.Errorf("heap in use: %d MB before the load, %d MB after the clients left, want under %d MB",
				heapBefore>>20, heapAfter>>20, (heapBefore+64<<20)>>20)
		}
	}
	if !waitFor(5*time.Second, func() bool { return connectedClients(t, rc) == clientsBefore }) {
		t.Errorf("connected_clients = %d after the load clients left, want %d", connectedClients(t, rc), clientsBefore)
	}
	// The proxy still serves, and the data of the last round is in place.
	for i := 0; i < loadClients; i += 97 {
		kp := keepers[i]
		for j, key := range kp.keys {
			if got := rc.do("GET", key); got != kp.last[j] {
				t.Errorf("GET %s after the load = %s, want %s", key, got, kp.last[j])
			}
		}
	}
}
