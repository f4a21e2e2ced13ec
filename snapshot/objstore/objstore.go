package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Scheme starts every URL of this package: s3://BUCKET/KEY.
const Scheme = "s3://"

// Sentinel errors.
var (
	// ErrBadURL: a string that is not an s3://BUCKET[/KEY] URL.
	ErrBadURL = errors.New("objstore: bad s3 URL")
	// ErrNoClient: an s3:// URL where no object store is configured.
	ErrNoClient = errors.New("objstore: no object store is configured (--s3-endpoint, or AWS S3 through the AWS environment)")
)

// Config says how to reach the store. DefaultConfig is the one place its
// defaults live.
type Config struct {
	// Endpoint is the URL of an S3-compatible server
	// ("http://127.0.0.1:9000"); empty means AWS S3 itself.
	Endpoint string
	// Region is the signing region; empty takes the one the AWS
	// configuration gives (AWS_REGION, the profile), else us-east-1.
	Region string
	// PartSize is the size of an upload's parts (at least 5 MiB, S3's
	// minimum for every part but the last).
	PartSize int
}

// DefaultConfig returns the defaults: AWS S3 and 8 MiB parts.
func DefaultConfig() Config { return Config{PartSize: 8 << 20} }

// minPartSize is S3's smallest part but the last.
const minPartSize = 5 << 20

func (c Config) validate() error {
	switch {
	case c.PartSize < minPartSize:
		return fmt.Errorf("objstore: part size must be at least %d bytes, got %d", minPartSize, c.PartSize)
	case c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://"):
		return fmt.Errorf("objstore: endpoint %q must start with http:// or https://", c.Endpoint)
	}
	return nil
}

// Client reaches one S3-compatible store.
type Client struct {
	s3       *s3.Client
	partSize int
}

// New loads the AWS configuration (credentials from the standard chain)
// and returns a client. It sends no request: missing credentials show at
// the first one.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("objstore: load AWS configuration: %w", err)
	}
	if ac.Region == "" {
		ac.Region = "us-east-1"
	}
	client := s3.NewFromConfig(ac, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
		}
	})
	return &Client{s3: client, partSize: cfg.PartSize}, nil
}

// URL names an object (Key) or a prefix of objects in a bucket.
type URL struct {
	Bucket string
	Key    string
}

// IsURL tells whether s is meant as an s3:// URL.
func IsURL(s string) bool { return strings.HasPrefix(s, Scheme) }

// ParseURL parses s3://BUCKET[/KEY]; a trailing slash of KEY is dropped.
func ParseURL(s string) (URL, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return URL{}, fmt.Errorf("%w: %q does not start with %s", ErrBadURL, s, Scheme)
	}
	bucket, key, _ := strings.Cut(rest, "/")
	key = strings.TrimSuffix(key, "/")
	switch {
	case bucket == "":
		return URL{}, fmt.Errorf("%w: %q has no bucket", ErrBadURL, s)
	case strings.Contains(key, "//"):
		return URL{}, fmt.Errorf("%w: %q has an empty path segment", ErrBadURL, s)
	}
	return URL{Bucket: bucket, Key: key}, nil
}

// String renders the URL as ParseURL reads it.
func (u URL) String() string {
	if u.Key == "" {
		return Scheme + u.Bucket
	}
	return Scheme + u.Bucket + "/" + u.Key
}

// Join returns the URL of name under u, with a slash between.
func (u URL) Join(name string) URL {
	if u.Key == "" {
		return URL{Bucket: u.Bucket, Key: name}
	}
	return URL{Bucket: u.Bucket, Key: u.Key + "/" + name}
}

// Base is the last path segment of the key.
func (u URL) Base() string { return u.Key[strings.LastIndexByte(u.Key, '/')+1:] }

// Open starts reading an object and returns its body and size. A missing
// object is an error wrapping fs.ErrNotExist.
func (c *Client) Open(ctx context.Context, u URL) (io.ReadCloser, int64, error) {
	out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &u.Bucket, Key: &u.Key})
	if err != nil {
		return nil, 0, wrap("read", u, err)
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}

// OpenFile opens name to read it front to back: a local path, or an s3://
// URL read through c (nil: an error wrapping ErrNoClient). A missing file
// or object is an error wrapping fs.ErrNotExist either way.
func OpenFile(ctx context.Context, c *Client, name string) (io.ReadCloser, error) {
	if !IsURL(name) {
		return os.Open(name)
	}
	u, err := ParseURL(name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("%s: %w", name, ErrNoClient)
	}
	body, _, err := c.Open(ctx, u)
	return body, err
}

// JoinPath is name under dir, where dir is a local path or an s3:// URL.
func JoinPath(dir, name string) string {
	if u, err := ParseURL(dir); err == nil {
		return u.Join(name).String()
	}
	return filepath.Join(dir, name)
}

// ReadAll reads a whole (small) object.
func (c *Client) ReadAll(ctx context.Context, u URL) ([]byte, error) {
	body, _, err := c.Open(ctx, u)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, wrap("read", u, err)
	}
	return b, nil
}

// Stat returns an object's size; a missing object is an error wrapping
// fs.ErrNotExist.
func (c *Client) Stat(ctx context.Context, u URL) (int64, error) {
	out, err := c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &u.Bucket, Key: &u.Key})
	if err != nil {
		return 0, wrap("stat", u, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

// Put writes a whole (small) object in one request.
func (c *Client) Put(ctx context.Context, u URL, body []byte) error {
	_, err := c.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &u.Bucket, Key: &u.Key, Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
	})
	return wrap("write", u, err)
}

// Listing is what List finds under a prefix: the keys directly under it
// and, as Dirs, the next path segment of deeper keys (without slashes).
type Listing struct {
	Keys []string
	Dirs []string
}

// List lists u as a directory: the objects whose keys start with u.Key
// and a slash, one level deep.
func (c *Client) List(ctx context.Context, u URL) (Listing, error) {
	prefix := ""
	if u.Key != "" {
		prefix = u.Key + "/"
	}
	var l Listing
	p := s3.NewListObjectsV2Paginator(c.s3, &s3.ListObjectsV2Input{
		Bucket: &u.Bucket, Prefix: &prefix, Delimiter: aws.String("/"),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return Listing{}, wrap("list", u, err)
		}
		for _, o := range page.Contents {
			l.Keys = append(l.Keys, strings.TrimPrefix(aws.ToString(o.Key), prefix))
		}
		for _, d := range page.CommonPrefixes {
			l.Dirs = append(l.Dirs, strings.TrimSuffix(strings.TrimPrefix(aws.ToString(d.Prefix), prefix), "/"))
		}
	}
	return l, nil
}

// Delete removes objects; a missing one is not an error (S3 says so too).
func (c *Client) Delete(ctx context.Context, us ...URL) error {
	var errs []error
	for _, u := range us {
		if _, err := c.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &u.Bucket, Key: &u.Key}); err != nil {
			if err := wrap("delete", u, err); !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// wrap names the object in an error and turns "no such key" into
// fs.ErrNotExist. The SDK's errors carry no credentials.
func wrap(op string, u URL, err error) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("objstore: %s %s: %w", op, u, fs.ErrNotExist)
		}
		return fmt.Errorf("objstore: %s %s: %s: %s", op, u, ae.ErrorCode(), ae.ErrorMessage())
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return fmt.Errorf("objstore: %s %s: %w", op, u, fs.ErrNotExist)
	}
	return fmt.Errorf("objstore: %s %s: %w", op, u, err)
}

// abortTimeout bounds the clean-up of a failed upload, which runs after
// the writer's context may have ended.
const abortTimeout = 30 * time.Second
