package control

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// What a cutover costs in etcd: each request a proxy sends to etcd inside
// a cutover's barrier (its ctx made by cutoverCtx) is counted, with the
// time it took, and the coordinator times its wait for the members' acks.
// INFO proxy shows the last cutover's (costInfo), and the several-proxies
// benchmark reports them.

// inCutover marks a context whose etcd requests are a cutover's.
type inCutover struct{}

// cutoverCtx marks ctx's etcd requests as a cutover's.
func cutoverCtx(ctx context.Context) context.Context {
	return context.WithValue(ctx, inCutover{}, true)
}

// cutoverCost is the last cutover's cost on this proxy.
type cutoverCost struct {
	requests atomic.Int64
	ns       atomic.Int64 // the requests' time
	acksNS   atomic.Int64 // the coordinator's wait for the acks
}

// reset starts a cutover's count.
func (c *cutoverCost) reset() {
	c.requests.Store(0)
	c.ns.Store(0)
	c.acksNS.Store(0)
}

// countCutover is the etcd client's unary interceptor: it counts the
// requests of a cutover's contexts (each attempt, as the client retries
// some), and passes every other through untouched.
func (e *Etcd) countCutover(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if ctx.Value(inCutover{}) == nil {
		return invoke(ctx, method, req, reply, cc, opts...)
	}
	start := time.Now()
	err := invoke(ctx, method, req, reply, cc, opts...)
	e.cost.requests.Add(1)
	e.cost.ns.Add(int64(time.Since(start)))
	return err
}

// costInfo adds the last cutover's cost to INFO proxy.
func (e *Etcd) costInfo(field func(string, any)) {
	field("etcd_cutover_requests", e.cost.requests.Load())
	field("etcd_cutover_us", e.cost.ns.Load()/1000)
	field("etcd_cutover_acks_wait_us", e.cost.acksNS.Load()/1000)
}
