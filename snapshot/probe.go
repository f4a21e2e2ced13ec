package snapshot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/reshard/reshard/internal/resp"
)

// A shard that drops a replica for overrunning client-output-buffer-limit
// says so only in its own log, which a capture of a remote shard cannot
// read. What the capture can see is the pattern: the link closed, the same
// shard (same replication id) still answers, and its INFO replication no
// longer lists the capture among its replicas. That is what classify
// checks, on a fresh connection, after a link error.

// replInfo is what the probe reads from INFO replication and persistence.
type replInfo struct {
	role         string
	replID       string
	replID2      string
	offset       int64
	replicas     []int  // the port= field of each slaveN line
	bgsaveStatus string // rdb_last_bgsave_status: ok or err
	linkUp       bool   // a replica's master_link_status:up
	syncing      bool   // a replica's master_sync_in_progress, or loading
}

// classify explains a link error by probing the shard.
func (s *Stream) classify(le *linkError, phase Phase) error {
	d := diagnosis{addr: s.cfg.Addr, phase: phase, at: s.offset.Load(), replID: s.replID,
		port: s.cfg.ListeningPort, linkTimeout: s.cfg.LinkTimeout, cause: le.err}
	var ne net.Error
	if !errors.As(le.err, &ne) || !ne.Timeout() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 2*s.cfg.DialTimeout)
		d.info, d.probeErr = probe(ctx, s.cfg)
		cancel()
	}
	return d.explain()
}

// diagnosis is what is known when the link breaks: the capture's state,
// the link's error, and what a probe of the shard found.
type diagnosis struct {
	addr        string
	phase       Phase
	at          int64  // the capture's offset
	replID      string // from +FULLRESYNC; empty in the handshake
	port        int    // announced listening-port
	linkTimeout time.Duration
	cause       error
	info        replInfo
	probeErr    error
}

func (d diagnosis) explain() error {
	what := fmt.Sprintf("shard %s, %s phase, capture at offset %d", d.addr, d.phase, d.at)
	if d.phase == PhaseHandshake {
		what = fmt.Sprintf("shard %s, %s phase", d.addr, d.phase)
	}
	var ne net.Error
	if errors.As(d.cause, &ne) && ne.Timeout() {
		return fmt.Errorf("%w (%s): no data from the shard for %s: %w", ErrLinkLost, what, d.linkTimeout, d.cause)
	}
	if d.probeErr != nil {
		return fmt.Errorf("%w (%s): the link broke (%w) and the shard does not answer: %w", ErrSourceGone, what, d.cause, d.probeErr)
	}
	if d.replID != "" && d.info.replID != d.replID {
		how := "it restarted or its data was replaced"
		if d.info.replID2 == d.replID {
			how = "it failed over or became a replica"
		}
		return fmt.Errorf("%w (%s): the link broke and the shard's replication id changed from %s to %s: %s: %w",
			ErrSourceGone, what, d.replID, d.info.replID, how, d.cause)
	}
	for _, port := range d.info.replicas {
		if port == d.port {
			return fmt.Errorf("%w (%s): %w", ErrLinkLost, what, d.cause)
		}
	}
	switch {
	case d.phase == PhaseHandshake:
		// No stream is buffered for a replica before its fork, so no
		// output buffer can overflow yet.
		return fmt.Errorf("%w (%s): the shard is up but closed the link: %w", ErrLinkLost, what, d.cause)
	case d.phase == PhaseRDB && d.info.bgsaveStatus == "err":
		return fmt.Errorf("%w, likely a failed background save (%s; rdb_last_bgsave_status:err: check the shard's disk and memory): %w",
			ErrClosedBySource, what, d.cause)
	}
	return fmt.Errorf("%w, likely client-output-buffer-limit replica (%s, source at %d: %d bytes behind; the shard is up and no longer lists the capture as a replica): %w",
		ErrClosedBySource, what, d.info.offset, d.info.offset-d.at, d.cause)
}

// probe reads INFO replication over a fresh connection.
func probe(ctx context.Context, cfg CaptureConfig) (replInfo, error) {
	d := net.Dialer{Timeout: cfg.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return replInfo{}, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReader(conn)
	if err := authenticate(conn, r, cfg.Username, cfg.Password); err != nil {
		return replInfo{}, err
	}
	var text strings.Builder
	for _, section := range []string{"replication", "persistence"} {
		body, err := infoSection(conn, r, section)
		if err != nil {
			return replInfo{}, err
		}
		text.WriteString(body)
	}
	return parseReplInfo(text.String()), nil
}

func infoSection(w io.Writer, r *bufio.Reader, section string) (string, error) {
	if _, err := w.Write(resp.AppendCommandString(nil, "INFO", section)); err != nil {
		return "", err
	}
	body, err := readBulk(r)
	if err != nil {
		return "", fmt.Errorf("INFO %s: %w", section, err)
	}
	return body, nil
}

// parseReplInfo parses the fields of INFO replication the probe needs.
func parseReplInfo(text string) replInfo {
	var info replInfo
	for _, line := range strings.Split(text, "\n") {
		key, val, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
		if !ok {
			continue
		}
		switch {
		case key == "role":
			info.role = val
		case key == "master_replid":
			info.replID = val
		case key == "master_replid2":
			info.replID2 = val
		case key == "rdb_last_bgsave_status":
			info.bgsaveStatus = val
		case key == "master_link_status":
			info.linkUp = val == "up"
		case key == "master_sync_in_progress", key == "loading":
			info.syncing = info.syncing || val != "0"
		case key == "master_repl_offset":
			info.offset, _ = strconv.ParseInt(val, 10, 64)
		case strings.HasPrefix(key, "slave") && strings.Contains(val, "port="):
			for _, f := range strings.Split(val, ",") {
				if p, ok := strings.CutPrefix(f, "port="); ok {
					if port, err := strconv.Atoi(p); err == nil {
						info.replicas = append(info.replicas, port)
					}
				}
			}
		}
	}
	return info
}
