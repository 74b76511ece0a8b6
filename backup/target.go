package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Target is where backups go: a local directory (file:///path) or an
// S3-compatible bucket (s3://bucket/prefix). Under it, replica/ holds the
// continuous replica and snapshots/ the snapshots with their manifests.
type Target struct {
	URL string
	// S3 settings, for s3:// URLs. Endpoint is empty for AWS itself; any
	// other S3-compatible service needs it (path-style addressing is then
	// used). Empty keys use the AWS SDK's default credential chain
	// (AWS_* environment variables, ~/.aws, instance roles).
	Endpoint, Region, AccessKeyID, SecretAccessKey string

	scheme, bucket, prefix string
}

// ParseTarget checks a backup URL and the S3 settings that go with it.
func ParseTarget(t Target) (*Target, error) {
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, fmt.Errorf("backup URL %q: %w", t.URL, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("backup URL %q: a file URL names a local directory, file:///path (three slashes)", t.URL)
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return nil, fmt.Errorf("backup URL %q: the directory must be absolute, file:///var/backups/tenon", t.URL)
		}
		t.scheme, t.prefix = "file", filepath.Clean(u.Path)
	case "s3":
		if u.Host == "" {
			return nil, fmt.Errorf("backup URL %q: name the bucket, s3://bucket/prefix", t.URL)
		}
		t.scheme, t.bucket, t.prefix = "s3", u.Host, strings.Trim(u.Path, "/")
		if t.Region == "" {
			t.Region = "us-east-1"
		}
		if t.Endpoint != "" {
			if e, err := url.Parse(t.Endpoint); err != nil || e.Host == "" || (e.Scheme != "http" && e.Scheme != "https") {
				return nil, fmt.Errorf("S3 endpoint %q must be an http(s) URL such as https://s3.example.com", t.Endpoint)
			}
		}
	default:
		return nil, fmt.Errorf("backup URL %q: use file:///directory or s3://bucket/prefix", t.URL)
	}
	return &t, nil
}

// String is the URL without credentials, for logs and reports.
func (t *Target) String() string { return t.URL }

// objects returns the object store at sub (replica, snapshots) under t.
func (t *Target) objects(ctx context.Context, sub string) (Bucket, error) {
	if t.scheme == "file" {
		return &dirBucket{dir: filepath.Join(t.prefix, sub)}, nil
	}
	c, err := t.s3Client(ctx)
	if err != nil {
		return nil, err
	}
	return &s3Bucket{client: c, bucket: t.bucket, prefix: path.Join(t.prefix, sub)}, nil
}

func (t *Target) s3Client(ctx context.Context) (*s3.Client, error) {
	opts := []func(*config.LoadOptions) error{config.WithRegion(t.Region)}
	if t.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(t.AccessKeyID, t.SecretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("S3 settings for %s: %w", t, err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if t.Endpoint != "" {
			o.BaseEndpoint = aws.String(t.Endpoint)
			o.UsePathStyle = true
		}
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}), nil
}

// Bucket is a flat store of named objects: the part of a target that
// snapshots need. Put replaces atomically (a reader sees the old object
// or the new one); Get of a missing name returns an error wrapping
// ErrNotFound.
type Bucket interface {
	Put(ctx context.Context, name string, r io.ReadSeeker) error
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	List(ctx context.Context) ([]Object, error)
	Delete(ctx context.Context, name string) error
}

// Object is one listed object.
type Object struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// ErrNotFound is returned for a missing object.
var ErrNotFound = errors.New("not found")

type dirBucket struct{ dir string }

func (b *dirBucket) Put(ctx context.Context, name string, r io.ReadSeeker) error {
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return fmt.Errorf("create backup directory: %w", err)
	}
	f, err := os.CreateTemp(b.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), filepath.Join(b.dir, name)); err != nil {
		return fmt.Errorf("rename %s: %w", name, err)
	}
	if d, err := os.Open(b.dir); err == nil {
		_ = d.Sync() // make the rename durable where the platform allows
		d.Close()
	}
	return nil
}

func (b *dirBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(b.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	return f, err
}

func (b *dirBucket) List(ctx context.Context) ([]Object, error) {
	entries, err := os.ReadDir(b.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", b.dir, err)
	}
	var out []Object
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed while listing
		}
		out = append(out, Object{Name: e.Name(), Size: info.Size(), ModTime: info.ModTime()})
	}
	return out, nil
}

func (b *dirBucket) Delete(ctx context.Context, name string) error {
	err := os.Remove(filepath.Join(b.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

type s3Bucket struct {
	client         *s3.Client
	bucket, prefix string
}

func (b *s3Bucket) key(name string) string { return path.Join(b.prefix, name) }

func (b *s3Bucket) Put(ctx context.Context, name string, r io.ReadSeeker) error {
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(b.bucket), Key: aws.String(b.key(name)), Body: r, ContentLength: aws.Int64(size),
	})
	if err != nil {
		return fmt.Errorf("upload %s to s3://%s/%s: %w", name, b.bucket, b.prefix, err)
	}
	return nil
}

func (b *s3Bucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key(name))})
	if err != nil {
		var nk *s3types.NoSuchKey
		if errors.As(err, &nk) {
			return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("download %s from s3://%s/%s: %w", name, b.bucket, b.prefix, err)
	}
	return out.Body, nil
}

func (b *s3Bucket) List(ctx context.Context) ([]Object, error) {
	var out []Object
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: aws.String(b.bucket), Prefix: aws.String(b.prefix + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", b.bucket, b.prefix, err)
		}
		for _, o := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), b.prefix+"/")
			if strings.Contains(name, "/") {
				continue
			}
			out = append(out, Object{Name: name, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (b *s3Bucket) Delete(ctx context.Context, name string) error {
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key(name))})
	if err != nil {
		return fmt.Errorf("delete %s from s3://%s/%s: %w", name, b.bucket, b.prefix, err)
	}
	return nil
}
