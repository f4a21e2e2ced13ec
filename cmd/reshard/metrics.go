package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/proxy/control"
)

// serveMetrics serves, on ln, /metrics (the proxy's and the control
// plane's metrics, with the Go runtime's and the process's, through the
// Prometheus client library), /healthz (200 while the proxy serves and
// reaches every shard) and /readyz (200 while it serves). It returns a
// function that stops it.
func serveMetrics(ln net.Listener, srv *proxy.Server, ctl *control.Plane, log *zap.Logger) (stop func()) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(srv.Collector(), ctl.Collector(), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(log)}))
	check := func(probe func() (bool, string)) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			ok, why := probe()
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			w.Write([]byte(why + "\n"))
		}
	}
	mux.Handle("/healthz", check(srv.Healthy))
	mux.Handle("/readyz", check(srv.Ready))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", zap.Error(err))
		}
	}()
	log.Info("metrics listening", zap.String("addr", ln.Addr().String()))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		<-done
	}
}
