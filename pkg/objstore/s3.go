package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Config configures an S3 store.
type S3Config struct {
	Bucket string
	// Prefix is prepended to every key (a trailing slash is added when
	// missing) and stripped from listed keys, so several stores can share
	// a bucket.
	Prefix string
	// Endpoint overrides the service endpoint, e.g. http://127.0.0.1:9000
	// for MinIO or LocalStack. Empty means AWS.
	Endpoint string
	// Region defaults to us-east-1.
	Region string
	// PathStyle addresses the bucket as endpoint/bucket rather than
	// bucket.endpoint; MinIO and LocalStack need it.
	PathStyle bool
	// AccessKey and SecretKey, when both set, are used as static
	// credentials instead of the SDK's default chain (environment, shared
	// config, instance role). Tests use them; the agent leaves them empty.
	AccessKey, SecretKey string
}

// S3 is a Store on an S3-compatible bucket (AWS S3, S3 Express, MinIO,
// LocalStack) using aws-sdk-go-v2. PutIfAbsent is a PUT with
// If-None-Match: *; the service's 412 becomes ErrExists.
type S3 struct {
	client *s3.Client
	bucket string
	prefix string
}

// NewS3 builds the client. It does not contact the bucket.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("objstore: s3: bucket is required")
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if cfg.AccessKey != "" && cfg.SecretKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("objstore: s3: load config: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// The "when supported" default adds CRC trailers that some
		// S3-compatible servers reject; plain SigV4 payload hashing is
		// enough for us.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &S3{client: client, bucket: cfg.Bucket, prefix: prefix}, nil
}

// Client returns the underlying SDK client.
func (s *S3) Client() *s3.Client { return s.client }

func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.put(ctx, key, data, nil); err != nil {
		return s.wrap("put", key, err)
	}
	return nil
}

func (s *S3) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.put(ctx, key, data, aws.String("*")); err != nil {
		return s.wrap("put-if-absent", key, err)
	}
	return nil
}

// put runs one PutObject. A 403 AccessDenied is retried a few times after
// a short pause: single-drive MinIO answers it when a concurrent delete
// removes the (empty) parent directory of the new object mid-write
// (minio/minio#15157, #12914). On AWS a 403 is permanent and this only
// delays the error by about 150ms. A 403 means nothing was written, so
// the retry is safe for conditional writes too.
// unsignedPayload leaves the body out of the SigV4 signature. Hashing every
// segment with SHA-256 cost a fifth of the agent's CPU in make bench; the
// segment carries its own CRC-32C, and TLS protects it on https endpoints.
var unsignedPayload = s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

func (s *S3) put(ctx context.Context, key string, data []byte, ifNoneMatch *string) error {
	for attempt := 0; ; attempt++ {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        aws.String(s.bucket),
			Key:           aws.String(s.prefix + key),
			Body:          bytes.NewReader(data),
			ContentLength: aws.Int64(int64(len(data))),
			IfNoneMatch:   ifNoneMatch,
		}, unsignedPayload)
		if err == nil || attempt == 3 || apiCode(err) != "AccessDenied" {
			return err
		}
		t := time.NewTimer(time.Duration(attempt+1) * 25 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	return readBody(out, key)
}

// GetRange reads length bytes at off. As with the other backends, a range
// running past the end is cut short and one starting at or past the end
// returns no bytes and no error (S3's 416 is mapped to that).
func (s *S3) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if err := checkRange(off, length); err != nil {
		return nil, err
	}
	if length == 0 {
		// An empty range has no HTTP spelling; still report a missing key.
		if _, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
			Bucket: aws.String(s.bucket),
			Key:    aws.String(s.prefix + key),
		}); err != nil {
			return nil, s.wrap("get range", key, err)
		}
		return []byte{}, nil
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1)),
	})
	if err != nil {
		if httpStatus(err) == http.StatusRequestedRangeNotSatisfiable || apiCode(err) == "InvalidRange" {
			return []byte{}, nil
		}
		return nil, s.wrap("get range", key, err)
	}
	return readBody(out, key)
}

func readBody(out *s3.GetObjectOutput, key string) ([]byte, error) {
	defer out.Body.Close()
	if out.ContentLength == nil || *out.ContentLength < 0 {
		b, err := io.ReadAll(out.Body)
		if err != nil {
			return nil, fmt.Errorf("objstore: s3 read %s: %w", key, err)
		}
		return b, nil
	}
	// Exactly the length given: a buffer grown while reading (bytes.Buffer
	// keeps room for 512 more) copies a whole segment into one twice its
	// size just before the end.
	b := make([]byte, *out.ContentLength)
	if _, err := io.ReadFull(out.Body, b); err != nil {
		return nil, fmt.Errorf("objstore: s3 read %s: %w", key, err)
	}
	return b, nil
}

func (s *S3) List(ctx context.Context, prefix, startAfter string, limit int) ([]ObjectInfo, error) {
	in := &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.prefix + prefix),
	}
	if startAfter != "" {
		in.StartAfter = aws.String(s.prefix + startAfter)
	}
	var out []ObjectInfo
	for {
		if limit > 0 {
			in.MaxKeys = aws.Int32(int32(min(limit-len(out), 1000)))
		}
		page, err := s.client.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, s.wrap("list", prefix, err)
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			out = append(out, ObjectInfo{Key: k, Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)})
		}
		if limit > 0 && len(out) >= limit {
			return out[:limit], nil
		}
		if !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
			return out, nil
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

func (s *S3) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		if errors.Is(s.wrap("delete", key, err), ErrNotFound) {
			return nil
		}
		return s.wrap("delete", key, err)
	}
	return nil
}

// wrap maps service errors to ErrNotFound and ErrExists and wraps the rest.
func (s *S3) wrap(op, key string, err error) error {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	switch code, status := apiCode(err), httpStatus(err); {
	case errors.As(err, &nsk), errors.As(err, &nf), code == "NoSuchKey", status == http.StatusNotFound && code != "NoSuchBucket":
		return ErrNotFound
	case code == "PreconditionFailed", code == "ConditionalRequestConflict",
		status == http.StatusPreconditionFailed, status == http.StatusConflict && op == "put-if-absent":
		return ErrExists
	}
	return fmt.Errorf("objstore: s3 %s %s/%s%s: %w", op, s.bucket, s.prefix, key, err)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
