// Package atomicfile replaces small state files so that a crash leaves
// either the old content or the new, never a mix: the persisted routing
// table and the credentials of its shards. It has no state and is safe for
// concurrent use on different names.
package atomicfile
