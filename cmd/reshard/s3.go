package main

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/reshard/reshard/snapshot/objstore"
)

// s3Flags are the object store flags of the commands that read or write
// s3:// URLs. Credentials come from the AWS environment (variables, shared
// files, instance roles), never from flags, so they stay out of shell
// history and process lists.
type s3Flags struct {
	endpoint string
	region   string
}

func (f *s3Flags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.endpoint, "s3-endpoint", "", "URL of an S3-compatible object store for s3:// paths (http://HOST:PORT); empty: AWS S3. Credentials come from the standard AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles)")
	fs.StringVar(&f.region, "s3-region", "", "region of the bucket; empty: AWS_REGION or the AWS profile's, else us-east-1")
}

// client returns a client when any of names is an s3:// URL, else nil.
func (f *s3Flags) client(ctx context.Context, names ...string) (*objstore.Client, error) {
	need := false
	for _, n := range names {
		need = need || objstore.IsURL(n)
	}
	if !need {
		return nil, nil
	}
	return f.newClient(ctx)
}

// newClient returns a client for the flags' store.
func (f *s3Flags) newClient(ctx context.Context) (*objstore.Client, error) {
	cfg := objstore.DefaultConfig()
	cfg.Endpoint, cfg.Region = f.endpoint, f.region
	return objstore.New(ctx, cfg)
}
