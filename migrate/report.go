package migrate

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a restore (or of a dry run: what it would do).
// Restore returns one whatever happens; after a failure it holds what was
// done up to the failure.
type Report struct {
	// DryRun: nothing was written; the target figures are the plan.
	DryRun bool
	// DB is the source database restored (into database 0 of the targets).
	DB int
	// Snapshot is the snapshot id from manifest.json, if any.
	Snapshot string
	Sources  []SourceReport
	Targets  []TargetReport
	// Functions is the number of function libraries loaded on every target.
	Functions int
	// OtherDBKeys and OtherDBCommands were skipped because they belong
	// to another database than DB.
	OtherDBKeys, OtherDBCommands int64
	// Dropped counts tail commands dropped on purpose (PUBLISH).
	Dropped int64
	Started time.Time
	// Duration is the whole job: checks, writes and verification.
	Duration time.Duration
	// Verify is set when verification ran.
	Verify *VerifyReport
	// Notes are things an operator should know that did not stop the job.
	Notes []string
	// Err is the error Restore returned, as text ("" on success).
	Err string
	// Partial: the restore failed after it had begun writing; each
	// target's Holds says what it holds.
	Partial bool
}

// SourceReport describes one source file.
type SourceReport struct {
	RDB        string
	Tail       string
	RDBVersion uint16
	Bytes      int64 // RDB size
	Keys       int64 // keys in the restored database, expired ones included
	// TailCommands is the number of data commands in the tail for the
	// restored database; TailFrom the offset they are applied from (after
	// a FLUSHALL/FLUSHDB, whose source keys are then not restored).
	TailCommands int64
	TailFrom     int64
}

// TargetReport describes one target shard.
type TargetReport struct {
	Addr         string
	RedisVersion string
	RDBVersion   uint16
	// Planned is what the pre-flight found this target's share to be.
	Planned Share
	// Written is the keys acknowledged by the target (by RESTORE, SET or
	// MSET, or big keys renamed into place); BigKeys of them were written
	// in chunks.
	Written int64
	BigKeys int64
	// Expired keys were skipped: they had expired when their turn came.
	Expired int64
	// TailCommands is the number of tail commands acknowledged.
	TailCommands int64
	// Errors counts what stopped the job: the keys of the MSET whose
	// error reply did (none of them was written), else 1 for the error
	// reply or broken connection; 0 on success. Benign counts the error
	// replies accepted as harmless (see the package documentation).
	Errors, Benign int64
	// KeysBefore is the target's key count before the restore.
	KeysBefore int64
	// Holds is, when the report is Partial, the target's DBSIZE once the
	// restore had stopped and the target had executed everything it had
	// been sent (more than Written: commands whose replies were never
	// read count there); -1 when the target did not answer.
	Holds int64
	// Duration is from the first command sent to this target to its last
	// reply.
	Duration time.Duration
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	// Sampled keys were compared value for value, of Candidates that
	// could be (keys the tail did not touch).
	Sampled, Candidates int64
	// Mismatches lists what differed (at most maxMismatches entries;
	// MismatchCount counts them all).
	Mismatches    []string
	MismatchCount int64
	// Counts per target: DBSIZE after the restore and what was expected;
	// CountChecked is false when the target did not start empty, a tail
	// changed the key count or AllowDuplicates was set.
	Counts []VerifyCount
}

// VerifyCount is the key count check of one target.
type VerifyCount struct {
	Addr            string
	Checked         bool
	DBSize, Written int64
	// Volatile keys were written with a TTL and may have expired since.
	Volatile int64
	OK       bool
}

const maxMismatches = 20

// WriteText writes the report as aligned text for a terminal or a log.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	mode := "restore"
	if r.DryRun {
		mode = "dry run (nothing written)"
	}
	fmt.Fprintf(&b, "%s of database %d", mode, r.DB)
	if r.Snapshot != "" {
		fmt.Fprintf(&b, " from snapshot %s", r.Snapshot)
	}
	fmt.Fprintf(&b, ", %s, %s, %v\n", count(len(r.Sources), "source"), count(len(r.Targets), "target"), r.Duration.Round(time.Millisecond))
	for _, s := range r.Sources {
		fmt.Fprintf(&b, "  source %s: RDB %d, %s, %s", s.RDB, s.RDBVersion, human(s.Bytes), count(s.Keys, "key"))
		if s.Tail != "" {
			fmt.Fprintf(&b, "; tail %s: %s", s.Tail, count(s.TailCommands, "command"))
			if s.TailFrom > 0 {
				fmt.Fprintf(&b, " from offset %d", s.TailFrom)
			}
		}
		b.WriteByte('\n')
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	if r.DryRun {
		fmt.Fprintln(tw, "target\tredis\tkeys\tbytes\tmemory (est.)\tbig keys\texpired (skip)\tkeys now\t")
		for _, t := range r.Targets {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t\n", t.Addr, t.RedisVersion, t.Planned.Keys, human(t.Planned.Bytes), human(t.Planned.Memory), t.Planned.BigKeys, t.Planned.Expired, t.KeysBefore)
		}
	} else {
		fmt.Fprintln(tw, "target\tredis\tplanned\twritten\tbig keys\texpired (skipped)\ttail cmds\terrors\tbenign\ttime\t")
		for _, t := range r.Targets {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%v\t\n", t.Addr, t.RedisVersion, t.Planned.Keys, t.Written, t.BigKeys, t.Expired, t.TailCommands, t.Errors, t.Benign, t.Duration.Round(time.Millisecond))
		}
	}
	tw.Flush()
	if r.Partial {
		b.WriteString("stopped part-way; the targets hold now:\n")
		for _, t := range r.Targets {
			if t.Holds < 0 {
				fmt.Fprintf(&b, "  %s: unknown (it did not answer DBSIZE)\n", t.Addr)
				continue
			}
			fmt.Fprintf(&b, "  %s: DBSIZE %d (%d before the restore)\n", t.Addr, t.Holds, t.KeysBefore)
		}
	}
	if r.Functions > 0 {
		fmt.Fprintf(&b, "function libraries: %d (on every target)\n", r.Functions)
	}
	if r.OtherDBKeys > 0 || r.OtherDBCommands > 0 {
		fmt.Fprintf(&b, "skipped, other databases: %s, %s\n", count(r.OtherDBKeys, "key"), count(r.OtherDBCommands, "tail command"))
	}
	if r.Dropped > 0 {
		fmt.Fprintf(&b, "tail commands dropped (PUBLISH): %d\n", r.Dropped)
	}
	if v := r.Verify; v != nil {
		fmt.Fprintf(&b, "verify: %d of %s compared, %s\n", v.Sampled, count(v.Candidates, "key"), count(v.MismatchCount, "mismatch"))
		for _, c := range v.Counts {
			switch {
			case !c.Checked:
				fmt.Fprintf(&b, "  %s: DBSIZE %d (not compared: the target was not empty, a tail changed the count or duplicates were allowed)\n", c.Addr, c.DBSize)
			case c.OK && c.DBSize == c.Written:
				fmt.Fprintf(&b, "  %s: DBSIZE %d = keys written\n", c.Addr, c.DBSize)
			case c.OK:
				fmt.Fprintf(&b, "  %s: DBSIZE %d, %d written, the difference within the %s with a TTL\n", c.Addr, c.DBSize, c.Written, count(c.Volatile, "key"))
			default:
				fmt.Fprintf(&b, "  %s: DBSIZE %d but %s written: MISMATCH\n", c.Addr, c.DBSize, count(c.Written, "key"))
			}
		}
		for _, m := range v.Mismatches {
			fmt.Fprintf(&b, "  mismatch: %s\n", m)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if r.Err != "" {
		fmt.Fprintf(&b, "FAILED: %s\n", r.Err)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// String is WriteText into a string.
func (r *Report) String() string {
	var b strings.Builder
	_ = r.WriteText(&b)
	return b.String()
}
