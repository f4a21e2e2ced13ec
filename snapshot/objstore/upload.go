package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// maxParts is S3's limit on the parts of one upload.
const maxParts = 10000

// partsPerSize is how many parts are sent at one size before the size
// doubles: 2500 parts each of 8, 16, 32 and 64 MiB hold 300 GB.
const partsPerSize = maxParts / 4

// ErrUploadDone: a write, Commit or Abort after the upload was committed
// or aborted.
var ErrUploadDone = errors.New("objstore: upload already committed or aborted")

// Upload writes one object as it is written (see the package comment). It
// is an io.Writer; Commit makes the object visible, Abort discards it.
type Upload struct {
	c   *Client
	u   URL
	ctx context.Context

	buf  []byte // the part being filled
	next int    // number of the next part to send, from 1
	id   *string
	n    int64

	wg    sync.WaitGroup // the part being sent
	mu    sync.Mutex     // guards done, err, spare
	done  []types.CompletedPart
	spare []byte // the buffer of the part last sent, once it is sent
	err   error

	over bool
}

// Create starts an upload of the object u. Nothing is sent before the
// first part is full or Commit is called; ctx bounds every request.
func (c *Client) Create(ctx context.Context, u URL) *Upload {
	return &Upload{c: c, u: u, ctx: ctx, next: 1}
}

// URL is the object being written.
func (w *Upload) URL() URL { return w.u }

// Size is how many bytes were written.
func (w *Upload) Size() int64 { return w.n }

func (w *Upload) partSize() int {
	return w.c.partSize << min((w.next-1)/partsPerSize, 3)
}

// Write buffers p and sends each part as it fills.
func (w *Upload) Write(p []byte) (int, error) {
	if w.over {
		return 0, ErrUploadDone
	}
	if err := w.failed(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = w.take()
		}
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		written += k
		w.n += int64(k)
		if len(w.buf) == cap(w.buf) {
			if err := w.send(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// take returns an empty buffer of the current part size, reusing the one
// of the part last sent when it fits. It does not wait for the part being
// sent: that one's buffer and this one are the two an Upload holds (send
// waits for the part before to be sent before it starts the next).
func (w *Upload) take() []byte {
	w.mu.Lock()
	b := w.spare
	w.spare = nil
	w.mu.Unlock()
	if size := w.partSize(); cap(b) != size {
		b = make([]byte, 0, size)
	}
	return b[:0]
}

func (w *Upload) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *Upload) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// send starts sending the full buffer as the next part, after the one
// before it is sent.
func (w *Upload) send() error {
	if w.next > maxParts {
		return fmt.Errorf("objstore: write %s: more than %d parts", w.u, maxParts)
	}
	w.wg.Wait()
	if err := w.failed(); err != nil {
		return err
	}
	if w.id == nil {
		out, err := w.c.s3.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{Bucket: &w.u.Bucket, Key: &w.u.Key})
		if err != nil {
			err = wrap("start upload of", w.u, err)
			w.fail(err)
			return err
		}
		w.id = out.UploadId
	}
	part, num := w.buf, int32(w.next)
	w.buf = nil
	w.next++
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		out, err := w.c.s3.UploadPart(w.ctx, &s3.UploadPartInput{
			Bucket: &w.u.Bucket, Key: &w.u.Key, UploadId: w.id, PartNumber: aws.Int32(num),
			Body: bytes.NewReader(part), ContentLength: aws.Int64(int64(len(part))),
		})
		if err != nil {
			w.fail(wrap(fmt.Sprintf("send part %d of", num), w.u, err))
			return
		}
		w.mu.Lock()
		w.done = append(w.done, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		w.spare = part
		w.mu.Unlock()
	}()
	return nil
}

// Commit sends what is buffered and completes the upload: the object
// exists, whole, only once Commit returns nil. On an error the upload is
// aborted.
func (w *Upload) Commit() error {
	if w.over {
		return ErrUploadDone
	}
	if err := w.commit(); err != nil {
		w.Abort()
		return err
	}
	w.over = true
	return nil
}

func (w *Upload) commit() error {
	if err := w.failed(); err != nil {
		return err
	}
	if w.id == nil {
		return w.c.Put(w.ctx, w.u, w.buf)
	}
	if len(w.buf) > 0 {
		if err := w.send(); err != nil {
			return err
		}
	}
	w.wg.Wait()
	if err := w.failed(); err != nil {
		return err
	}
	slices.SortFunc(w.done, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	_, err := w.c.s3.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &w.u.Bucket, Key: &w.u.Key, UploadId: w.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.done},
	})
	return wrap("complete upload of", w.u, err)
}

// Abort discards the upload and the parts sent; after Commit it does
// nothing. It is idempotent.
func (w *Upload) Abort() {
	if w.over {
		return
	}
	w.over = true
	w.wg.Wait()
	w.buf = nil
	if w.id == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), abortTimeout)
	defer cancel()
	// A failure leaves parts that a bucket lifecycle rule
	// (AbortIncompleteMultipartUpload) removes; the caller already has
	// the error that made it abort.
	w.c.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &w.u.Bucket, Key: &w.u.Key, UploadId: w.id})
}
