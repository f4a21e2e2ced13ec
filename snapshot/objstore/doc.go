// Package objstore reads and writes files of snapshots in S3-compatible
// object storage: AWS S3, or any store that speaks its protocol (MinIO,
// Ceph, Cloudflare R2, ...) through an endpoint URL.
//
// # Why this shape
//
// A snapshot's RDB arrives from a shard as a stream of unknown length and
// may be larger than the proxy's memory or local disk. Create returns an
// Upload that sends it as a multipart upload while it is written: parts of
// PartSize bytes (8 MiB by default, growing for very large files so that
// S3's limit of 10000 parts allows about 300 GB), one part filling while
// the previous one is sent, so an Upload holds at most two parts in memory
// whatever the file's size. Nothing is staged on local disk. A file that
// fits in one part is sent with one PutObject.
//
// Reads are streams too (GetObject's body), so a restore from the store
// reads each file front to back without a local copy.
//
// The client is the AWS SDK for Go v2, for its standard credential chain
// (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared
// files, web identity on EKS, the ECS and EC2 metadata services): operators
// configure it as they configure every other AWS tool. Credentials stay in
// the SDK: this package never logs them nor puts them in an error. With an
// endpoint set, requests use path-style addressing, which S3-compatible
// servers expect, and checksums are sent only where S3 requires them, which
// every S3-compatible server accepts.
//
// # Concurrency
//
// A Client is safe for concurrent use. An Upload is used by one writer; its
// Commit and Abort may be called from another goroutine once writing has
// stopped. An Upload owns at most one goroutine, sending a part, which
// Commit and Abort wait for.
package objstore
