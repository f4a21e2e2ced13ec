package control

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/reshard/reshard/migrate"
	"github.com/reshard/reshard/snapshot"
)

// The control plane's metrics: the reshard's and the snapshots' progress,
// read from their status at scrape time.

var reshardStates = []migrate.ReshardState{migrate.ReshardCopying, migrate.ReshardCatchingUp, migrate.ReshardReady,
	migrate.ReshardCutover, migrate.ReshardDone, migrate.ReshardAborted, migrate.ReshardFailed}

var (
	descReshardState  = prometheus.NewDesc("reshard_reshard_state", "1 for the state of the running or last reshard (PROXY RESHARD STATUS state).", []string{"state"}, nil)
	descReshardKeys   = prometheus.NewDesc("reshard_reshard_keys_copied", "Keys of the sources' RDBs written into the targets by the running or last reshard.", nil, nil)
	descReshardBytes  = prometheus.NewDesc("reshard_reshard_bytes_copied", "RDB bytes written into the targets by the running or last reshard.", nil, nil)
	descReshardRDB    = prometheus.NewDesc("reshard_reshard_rdb_bytes", "Total size of the sources' RDBs of the running or last reshard.", nil, nil)
	descReshardLag    = prometheus.NewDesc("reshard_reshard_lag_bytes", "Largest replication lag of a source's stream behind the targets, bytes.", nil, nil)
	descReshardLagS   = prometheus.NewDesc("reshard_reshard_lag_seconds", "Largest replication lag of a source's stream behind the targets, seconds.", nil, nil)
	descReshardPause  = prometheus.NewDesc("reshard_reshard_pause_seconds", "How long the last reshard's cutover held the barrier; 0 before its cutover.", nil, nil)
	descReshardTook   = prometheus.NewDesc("reshard_reshard_duration_seconds", "How long the last reshard took, start to end; 0 while it runs.", nil, nil)
	descSnapRunning   = prometheus.NewDesc("reshard_snapshot_in_progress", "1 while a snapshot runs (rdb_bgsave_in_progress).", nil, nil)
	descSnapLast      = prometheus.NewDesc("reshard_snapshot_last_success_timestamp_seconds", "When the last successful snapshot ended (LASTSAVE); 0 before one.", nil, nil)
	descSnapLastOK    = prometheus.NewDesc("reshard_snapshot_last_ok", "1 unless the last snapshot that ended failed.", nil, nil)
	descSnapLastTook  = prometheus.NewDesc("reshard_snapshot_last_duration_seconds", "How long the last snapshot that ended took.", nil, nil)
	descRestoreState  = prometheus.NewDesc("reshard_restore_state", "1 for the state of the running or last PROXY RESTORE.", []string{"state"}, nil)
	descRestoreKeys   = prometheus.NewDesc("reshard_restore_keys", "Source keys the running or last PROXY RESTORE has handled.", nil, nil)
	descRestoreTotal  = prometheus.NewDesc("reshard_restore_keys_total", "Source keys of the running or last PROXY RESTORE.", nil, nil)
	descRestoreBytes  = prometheus.NewDesc("reshard_restore_source_bytes_read", "How far into its sources the running or last PROXY RESTORE is, bytes.", nil, nil)
	descRestoreTook   = prometheus.NewDesc("reshard_restore_elapsed_seconds", "How long the running or last PROXY RESTORE has run.", nil, nil)
	descEtcdLease     = prometheus.NewDesc("reshard_etcd_lease_held", "1 while the proxy holds its etcd membership lease (only with --etcd).", nil, nil)
	controlMetricDesc = []*prometheus.Desc{descRestoreState, descRestoreKeys, descRestoreTotal, descRestoreBytes, descRestoreTook, descEtcdLease, descReshardState, descReshardKeys, descReshardBytes, descReshardRDB, descReshardLag,
		descReshardLagS, descReshardPause, descReshardTook, descSnapRunning, descSnapLast, descSnapLastOK, descSnapLastTook}
)

type collector struct{ p *Plane }

// Collector returns the control plane's metrics, for a Prometheus
// registry.
func (p *Plane) Collector() prometheus.Collector { return collector{p} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range controlMetricDesc {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	c.p.reshard.mu.Lock()
	job := c.p.reshard.job
	c.p.reshard.mu.Unlock()
	if job != nil {
		st := job.Status()
		for _, s := range reshardStates {
			v := 0.0
			if st.State == s {
				v = 1
			}
			gauge(descReshardState, v, string(s))
		}
		gauge(descReshardKeys, float64(st.KeysCopied))
		gauge(descReshardBytes, float64(st.BytesCopied))
		gauge(descReshardRDB, float64(st.RDBBytes))
		gauge(descReshardLag, float64(st.LagBytes))
		gauge(descReshardLagS, st.LagTime.Seconds())
		gauge(descReshardPause, float64(st.PauseUS)/1e6)
		took := 0.0
		if reshardEnded(st.State) && !st.Times.Finished.IsZero() {
			took = st.Times.Finished.Sub(st.Times.Started).Seconds()
		}
		gauge(descReshardTook, took)
	}
	c.p.rest.mu.Lock()
	rjob := c.p.rest.job
	c.p.rest.mu.Unlock()
	if rjob != nil {
		st := rjob.Status()
		for _, s := range []migrate.JobState{migrate.JobRunning, migrate.JobDone, migrate.JobFailed} {
			gauge(descRestoreState, b2f(st.State == s), string(s))
		}
		gauge(descRestoreKeys, float64(st.Progress.Keys))
		gauge(descRestoreTotal, float64(st.Progress.KeysTotal))
		gauge(descRestoreBytes, float64(st.Progress.Bytes))
		gauge(descRestoreTook, st.Progress.Elapsed.Seconds())
	}
	if e := c.p.cfg.Etcd; e != nil {
		gauge(descEtcdLease, b2f(e.lease() != 0 && c.p.srv.LeaseHeld()))
	}
	sn := &c.p.snaps
	sn.mu.Lock()
	running := sn.job != nil && sn.job.Status().State == snapshot.StateRunning
	last, failed, took := sn.lastSave, sn.lastFailed, sn.lastTook
	sn.mu.Unlock()
	gauge(descSnapRunning, b2f(running))
	lastUnix := 0.0
	if !last.IsZero() {
		lastUnix = float64(last.UnixNano()) / 1e9
	}
	gauge(descSnapLast, lastUnix)
	gauge(descSnapLastOK, b2f(!failed))
	gauge(descSnapLastTook, took.Seconds())
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
