package backend

import (
	"sync/atomic"

	"github.com/reshard/reshard/proxy/internal/wire"
)

// Pending is one request waiting for its reply: the reply goes to slot I of
// batch B.
type Pending struct {
	B *Batch
	I int32
}

// Batch collects the replies of one client pipeline. Slot buffers are owned
// by the session and reused from pipeline to pipeline.
//
// The replies are held until the last one arrives, so the client's output
// buffer limit applies as they arrive: once their bytes pass it, the rest
// are read from the shards (the connections must stay in step) but not
// kept, and the session drops the client. Without that, a pipeline of GETs
// of a large value would hold all its replies, whatever the limit.
type Batch struct {
	Results   [][]byte
	Remaining atomic.Int32
	Done      chan struct{}
	Limit     int64        // the client's output buffer limit
	Size      atomic.Int64 // bytes delivered
}

func (b *Batch) Deliver(i int32, reply []byte) {
	if b.Size.Add(int64(len(reply))) > b.Limit {
		reply = nil // the session drops the client (overLimit)
	}
	b.Results[i] = reply
	if b.Remaining.Add(-1) == 0 {
		b.Done <- struct{}{}
	}
}

// OverLimit reports whether the replies delivered passed the limit.
func (b *Batch) OverLimit() bool { return b.Size.Load() > b.Limit }

func (b *Batch) Fail(i int32, msg string) {
	b.Deliver(i, wire.AppendError(b.Results[i][:0], msg))
}
