package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over a fixed map.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestConfigDefaults(t *testing.T) {
	c, err := parseConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		Listen:            ":9092",
		Advertise:         "localhost:9092",
		PeerAdvertise:     "localhost:9092", // --advertise's
		Store:             "file://./data",
		HTTP:              ":9644",
		FlushInterval:     5 * time.Millisecond,
		FlushBytes:        8 << 20,
		CacheBytes:        512 << 20,
		AutoCreateTopics:  true,
		DefaultPartitions: 1,
		MetaPoll:          100 * time.Millisecond,
		LogLevel:          "info",
		GroupInitialDelay: 3 * time.Second,
		TxnMaxTimeout:     15 * time.Minute,
		TxnIDExpiration:   7 * 24 * time.Hour,
		TxnAbortInterval:  10 * time.Second,
		OffsetsRetention:  7 * 24 * time.Hour,
		OffsetsCheck:      10 * time.Minute,
		Jobs:              true,
		Sequencer:         true,
		RetentionCheck:    5 * time.Minute,
		CollectGrace:      10 * time.Minute,
		CompactionEvery:   5 * time.Minute,
		CompactionTarget:  64 << 20,
		OrphanGrace:       10 * time.Minute,
		MetaRetention:     time.Hour,
		MetaSnapEvery:     1000,
		JobLease:          2 * time.Minute,
		CleanerBackoff:    15 * time.Second,
		CleanerKeys:       1 << 20,
		WriteTimeout:      2 * time.Minute,
		MaxTopicParts:     10_000,
		MaxParts:          200_000,
		ProducerExpiry:    24 * time.Hour,
		FetchMaxBytes:     55 << 20,
		QueuedMaxBytes:    256 << 20,
		ConnMaxIdle:       10 * time.Minute,
		MaxConns:          4096,
		MaxConnsPerIP:     1024,
		BodyTimeout:       10 * time.Second,
		Pprof:             false,
		FormatGrace:       time.Hour,
		DrainTimeout:      30 * time.Second,
		Security:          securityFlags{Authorizer: "none", AuthTimeout: 10 * time.Second, FailedAuthDelay: 100 * time.Millisecond},
	}
	if c != want {
		t.Errorf("defaults\n got %+v\nwant %+v", c, want)
	}
	host, port, err := c.advertised()
	if err != nil || host != "localhost" || port != 9092 {
		t.Errorf("advertised() = %q, %d, %v", host, port, err)
	}
}

// Every flag can come from BARGE_<FLAG> with dashes as underscores.
func TestConfigFromEnv(t *testing.T) {
	c, err := parseConfig(nil, env(map[string]string{
		"BARGE_LISTEN":                           "127.0.0.1:19092",
		"BARGE_ADVERTISE":                        "broker.example:29092",
		"BARGE_STORE":                            "s3://bucket/prefix?region=eu-west-1",
		"BARGE_HTTP":                             "127.0.0.1:9999",
		"BARGE_FLUSH_INTERVAL":                   "40ms",
		"BARGE_FLUSH_BYTES":                      "1048576",
		"BARGE_CACHE_BYTES":                      "2097152",
		"BARGE_AUTO_CREATE_TOPICS":               "false",
		"BARGE_DEFAULT_PARTITIONS":               "3",
		"BARGE_META_POLL_INTERVAL":               "1s",
		"BARGE_LOG_LEVEL":                        "debug",
		"BARGE_GROUP_INITIAL_REBALANCE_DELAY":    "10ms",
		"BARGE_TRANSACTION_MAX_TIMEOUT":          "1m",
		"BARGE_TRANSACTIONAL_ID_EXPIRATION":      "1h",
		"BARGE_TRANSACTION_ABORT_INTERVAL":       "1s",
		"BARGE_OFFSETS_RETENTION":                "1h",
		"BARGE_OFFSETS_RETENTION_CHECK_INTERVAL": "1m",
		"BARGE_JOBS":                             "false",
		"BARGE_RETENTION_CHECK_INTERVAL":         "200ms",
		"BARGE_COLLECT_GRACE":                    "0s",
		"BARGE_COMPACTION_INTERVAL":              "0s",
		"BARGE_COMPACTION_TARGET_BYTES":          "1000",
		"BARGE_META_RETENTION":                   "30m",
		"BARGE_ORPHAN_GRACE":                     "1m",
		"BARGE_META_SNAPSHOT_ENTRIES":            "50",
		"BARGE_JOB_LEASE":                        "30s",
		"BARGE_CLEANER_BACKOFF":                  "0s",
		"BARGE_CLEANER_KEYS":                     "1000",
		"BARGE_WRITE_TIMEOUT":                    "30s",
		"BARGE_MAX_PARTITIONS_PER_TOPIC":         "500",
		"BARGE_MAX_PARTITIONS":                   "5000",
		"BARGE_PRODUCER_ID_EXPIRATION":           "1h",
		"BARGE_CLUSTER_FORMAT_GRACE":             "10m",
		"BARGE_FETCH_MAX_BYTES":                  "4096",
		"BARGE_QUEUED_MAX_REQUEST_BYTES":         "65536",
		"BARGE_CONNECTIONS_MAX_IDLE":             "1s",
		"BARGE_MAX_CONNECTIONS":                  "10",
		"BARGE_MAX_CONNECTIONS_PER_IP":           "3",
		"BARGE_REQUEST_BODY_TIMEOUT":             "2s",
		"BARGE_PPROF":                            "true",
		"BARGE_DRAIN_TIMEOUT":                    "90s",
		"BARGE_SASL_MECHANISMS":                  "scram-sha-512,PLAIN",
		"BARGE_SASL_BOOTSTRAP_USER":              "admin:s3cret:with-colon",
		"BARGE_AUTHORIZER":                       "acl",
		"BARGE_SUPER_USERS":                      "User:ops;User:CN=a,O=b",
		"BARGE_AUTHENTICATION_TIMEOUT":           "3s",
		"BARGE_CONNECTIONS_MAX_REAUTH":           "1h",
		"BARGE_META_SEQUENCER":                   "false",
		"LISTEN":                                 ":1", // not ours
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		Listen:            "127.0.0.1:19092",
		Advertise:         "broker.example:29092",
		PeerAdvertise:     "broker.example:29092",
		Store:             "s3://bucket/prefix?region=eu-west-1",
		HTTP:              "127.0.0.1:9999",
		FlushInterval:     40 * time.Millisecond,
		FlushBytes:        1 << 20,
		CacheBytes:        2 << 20,
		AutoCreateTopics:  false,
		DefaultPartitions: 3,
		MetaPoll:          time.Second,
		LogLevel:          "debug",
		GroupInitialDelay: 10 * time.Millisecond,
		TxnMaxTimeout:     time.Minute,
		TxnIDExpiration:   time.Hour,
		TxnAbortInterval:  time.Second,
		OffsetsRetention:  time.Hour,
		OffsetsCheck:      time.Minute,
		RetentionCheck:    200 * time.Millisecond,
		CompactionTarget:  1000,
		OrphanGrace:       time.Minute,
		MetaRetention:     30 * time.Minute,
		MetaSnapEvery:     50,
		JobLease:          30 * time.Second,
		CleanerKeys:       1000,
		WriteTimeout:      30 * time.Second,
		MaxTopicParts:     500,
		MaxParts:          5000,
		ProducerExpiry:    time.Hour,
		FetchMaxBytes:     4096,
		QueuedMaxBytes:    64 << 10,
		ConnMaxIdle:       time.Second,
		MaxConns:          10,
		MaxConnsPerIP:     3,
		BodyTimeout:       2 * time.Second,
		Pprof:             true,
		FormatGrace:       10 * time.Minute,
		DrainTimeout:      90 * time.Second,
		Security: securityFlags{SASLMechanisms: "scram-sha-512,PLAIN", BootstrapUser: "admin:s3cret:with-colon",
			Authorizer: "acl", SuperUsers: "User:ops;User:CN=a,O=b", AuthTimeout: 3 * time.Second, MaxReauth: time.Hour,
			FailedAuthDelay: 100 * time.Millisecond},
	}
	if c != want {
		t.Errorf("from env\n got %+v\nwant %+v", c, want)
	}
}

func TestConfigFlagsWinOverEnv(t *testing.T) {
	vars := map[string]string{
		"BARGE_LISTEN":         ":1111",
		"BARGE_FLUSH_INTERVAL": "1s",
		"BARGE_STORE":          "s3://from-env",
		"BARGE_ADVERTISE":      "env-host:1",
	}
	c, err := parseConfig([]string{"-listen", ":2222", "--flush-interval=20ms", "-default-partitions=9", "-advertise", ""}, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":2222" || c.FlushInterval != 20*time.Millisecond || c.DefaultPartitions != 9 {
		t.Errorf("flags lost to env: %+v", c)
	}
	if c.Store != "s3://from-env" {
		t.Errorf("store %q: env should fill a flag not given", c.Store)
	}
	// An explicitly empty -advertise is given: env does not fill it, and
	// it is derived from the listener.
	if c.Advertise != "localhost:2222" {
		t.Errorf("advertise %q, want localhost:2222", c.Advertise)
	}
}

func TestConfigFlushIntervalDefault(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want time.Duration
	}{
		{[]string{"-store", "s3://bucket"}, nil, 250 * time.Millisecond},
		{[]string{"-store", "s3://bucket/p?endpoint=http://127.0.0.1:9000&path_style=true"}, nil, 250 * time.Millisecond},
		{nil, map[string]string{"BARGE_STORE": "s3://bucket"}, 250 * time.Millisecond},
		{[]string{"-store", "file:///var/lib/barge"}, nil, 5 * time.Millisecond},
		{[]string{"-store", "file://./data"}, nil, 5 * time.Millisecond},
		{[]string{"-store", "mem://"}, nil, 5 * time.Millisecond},
		{[]string{"-store", "s3://bucket", "-flush-interval", "1ms"}, nil, time.Millisecond},
		{[]string{"-store", "file://./data", "-flush-interval", "1s"}, nil, time.Second},
		{[]string{"-store", "s3://bucket", "-flush-interval", "0"}, nil, 250 * time.Millisecond},
	} {
		c, err := parseConfig(tc.args, env(tc.env))
		if err != nil {
			t.Errorf("%v %v: %v", tc.args, tc.env, err)
			continue
		}
		if c.FlushInterval != tc.want {
			t.Errorf("%v %v: flush interval %v, want %v", tc.args, tc.env, c.FlushInterval, tc.want)
		}
	}
}

func TestConfigAdvertiseFromListen(t *testing.T) {
	for _, tc := range []struct{ listen, want string }{
		{":9092", "localhost:9092"},
		{"0.0.0.0:9093", "localhost:9093"},
		{"[::]:9094", "localhost:9094"},
		{"127.0.0.1:9095", "127.0.0.1:9095"},
		{"broker-1.internal:9096", "broker-1.internal:9096"},
		{"[::1]:9097", "[::1]:9097"},
	} {
		c, err := parseConfig([]string{"-listen", tc.listen}, env(nil))
		if err != nil {
			t.Errorf("listen %q: %v", tc.listen, err)
			continue
		}
		if c.Advertise != tc.want {
			t.Errorf("listen %q: advertise %q, want %q", tc.listen, c.Advertise, tc.want)
		}
	}
	// An explicit advertise is kept as given.
	c, err := parseConfig([]string{"-listen", ":9092", "-advertise", "public.example:443"}, env(nil))
	if err != nil || c.Advertise != "public.example:443" {
		t.Errorf("explicit advertise: %q, %v", c.Advertise, err)
	}
}

func TestConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // in the error
	}{
		{"unknown flag", []string{"-nope"}, nil, "nope"},
		{"stray argument", []string{"-listen"}, nil, "listen"},
		{"bad duration flag", []string{"-flush-interval", "soon"}, nil, "flush-interval"},
		{"negative flush interval", []string{"-flush-interval", "-1ms"}, nil, "positive"},
		{"zero flush bytes", []string{"-flush-bytes", "0"}, nil, "positive"},
		{"negative flush bytes", []string{"-flush-bytes", "-5"}, nil, "positive"},
		{"zero cache bytes", []string{"-cache-bytes", "0"}, nil, "positive"},
		{"zero default partitions", []string{"-default-partitions", "0"}, nil, "positive"},
		{"zero job lease", []string{"-job-lease", "0"}, nil, "job-lease"},
		{"fetch max bytes under 1 KiB", []string{"-fetch-max-bytes", "1000"}, nil, "fetch-max-bytes"},
		{"fetch max bytes over int32", []string{"-fetch-max-bytes", "2147483648"}, nil, "fetch-max-bytes"},
		{"zero queued request bytes", []string{"-queued-max-request-bytes", "0"}, nil, "queued-max-request-bytes"},
		{"zero idle", []string{"-connections-max-idle", "0"}, nil, "connections-max-idle"},
		{"zero body timeout", []string{"-request-body-timeout", "0"}, nil, "request-body-timeout"},
		{"zero max connections", []string{"-max-connections", "0"}, nil, "max-connections"},
		{"zero max connections per ip", []string{"-max-connections-per-ip", "0"}, nil, "max-connections-per-ip"},
		{"listen without port", []string{"-listen", "9092"}, nil, "listen"},
		{"advertise without port", []string{"-advertise", "host"}, nil, "advertise"},
		{"advertise port zero", []string{"-advertise", "host:0"}, nil, "port"},
		{"advertise port too big", []string{"-advertise", "host:65536"}, nil, "port"},
		{"advertise port not a number", []string{"-advertise", "host:kafka"}, nil, "port"},
		{"listen port not a number", []string{"-listen", ":kafka"}, nil, "port"},
		{"bad env duration", nil, map[string]string{"BARGE_FLUSH_INTERVAL": "fast"}, "BARGE_FLUSH_INTERVAL"},
		{"bad env bool", nil, map[string]string{"BARGE_AUTO_CREATE_TOPICS": "maybe"}, "BARGE_AUTO_CREATE_TOPICS"},
		{"bad env integer", nil, map[string]string{"BARGE_FLUSH_BYTES": "8MiB"}, "BARGE_FLUSH_BYTES"},
		{"env zero partitions", nil, map[string]string{"BARGE_DEFAULT_PARTITIONS": "0"}, "positive"},
		{"orphan grace within the write timeout", []string{"-orphan-grace", "1m", "-write-timeout", "1m"}, nil, "must exceed write-timeout"},
		{"a certificate without its key", []string{"-tls-cert-file", "c.pem"}, nil, "go together"},
		{"a client CA without TLS", []string{"-tls-client-ca-file", "ca.pem"}, nil, "needs tls-cert-file"},
		{"an unknown SASL mechanism", []string{"-sasl-mechanisms", "PLAIN,GSSAPI"}, nil, "unknown SASL mechanism"},
		{"a bootstrap user without SASL", []string{"-sasl-bootstrap-user", "admin:pw"}, nil, "needs sasl-mechanisms"},
		{"a bootstrap user without a password", []string{"-sasl-mechanisms", "PLAIN", "-sasl-bootstrap-user", "admin"}, nil, "NAME:PASSWORD"},
		{"an unknown authorizer", []string{"-authorizer", "opa"}, nil, "authorizer must be"},
		{"a super user that is no principal", []string{"-super-users", "admin"}, nil, "not a principal"},
		{"zero write timeout", []string{"-write-timeout", "0"}, nil, "write-timeout"},
		{"partitions per topic past the state's bound", []string{"-max-partitions-per-topic", "2000000"}, nil, "max-partitions-per-topic"},
		{"partitions past the state's bound", []string{"-max-partitions", "100000000"}, nil, "max-partitions"},
		{"default partitions past the limit", []string{"-default-partitions", "20", "-max-partitions-per-topic", "10"}, nil, "default-partitions"},
		{"zero drain timeout", []string{"-drain-timeout", "0"}, nil, "drain-timeout"},
		{"negative drain timeout", []string{"-drain-timeout", "-1s"}, nil, "drain-timeout"},
		{"producer expiration past a day", []string{"-producer-id-expiration", "48h"}, nil, "producer-id-expiration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, env(tc.env))
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestConfigHelp(t *testing.T) {
	if _, err := parseConfig([]string{"-h"}, env(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

// --peer-advertise defaults to --advertise (direct mode); a different one
// means the advertised address is shared, and it must be a host:port.
func TestConfigPeerAdvertise(t *testing.T) {
	noenv := func(string) string { return "" }
	c, err := parseConfig([]string{"--advertise", "lb:9092"}, noenv)
	if err != nil || c.PeerAdvertise != "lb:9092" || c.sharedAddress() {
		t.Fatalf("default: %q shared=%v %v", c.PeerAdvertise, c.sharedAddress(), err)
	}
	c, err = parseConfig([]string{"--advertise", "lb:9092", "--peer-advertise", "10.0.0.1:9092"}, noenv)
	if err != nil || c.PeerAdvertise != "10.0.0.1:9092" || !c.sharedAddress() {
		t.Fatalf("explicit: %q shared=%v %v", c.PeerAdvertise, c.sharedAddress(), err)
	}
	if _, err := parseConfig([]string{"--peer-advertise", "nohost"}, noenv); err == nil {
		t.Fatal("a peer address without a port was accepted")
	}
}

// --advertise auto and --peer-advertise auto are kept for start-up, where
// resolveAddrs fills them in; the port comes from --listen.
func TestConfigAdvertiseAuto(t *testing.T) {
	c, err := parseConfig([]string{"--listen", ":9093", "--advertise", "auto"}, env(nil))
	if err != nil || c.Advertise != "auto" || c.PeerAdvertise != "auto" || c.sharedAddress() {
		t.Fatalf("--advertise auto: %q %q shared=%v %v", c.Advertise, c.PeerAdvertise, c.sharedAddress(), err)
	}
	c, err = parseConfig([]string{"--advertise", "lb.example:9092"}, env(map[string]string{"BARGE_PEER_ADVERTISE": "auto"}))
	if err != nil || c.Advertise != "lb.example:9092" || c.PeerAdvertise != "auto" || !c.sharedAddress() {
		t.Fatalf("--peer-advertise auto: %q %q shared=%v %v", c.Advertise, c.PeerAdvertise, c.sharedAddress(), err)
	}
	for _, listen := range []string{":0", "9092", ":kafka"} {
		if _, err := parseConfig([]string{"--listen", listen, "--advertise", "auto"}, env(nil)); err == nil || !strings.Contains(err.Error(), "--listen") {
			t.Errorf("--listen %q with --advertise auto: %v, want an error naming --listen", listen, err)
		}
	}
}

// resolveAddrs asks instance metadata for local-ipv4 the IMDSv2 way (a
// token first) and keeps the listener's port; an answer that is not an
// IPv4 address stops it, naming the flag.
func TestResolveAddrs(t *testing.T) {
	ipv4 := "10.1.2.3"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			fmt.Fprint(w, "tok")
		case r.Header.Get("X-Aws-Ec2-Metadata-Token") != "tok":
			http.Error(w, "no token", http.StatusUnauthorized)
		case r.URL.Path == "/latest/meta-data/local-ipv4":
			fmt.Fprint(w, ipv4)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL)
	ctx := context.Background()

	c, err := parseConfig([]string{"--listen", "0.0.0.0:9093", "--advertise", "auto"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.resolveAddrs(ctx); err != nil || c.Advertise != "10.1.2.3:9093" || c.PeerAdvertise != "10.1.2.3:9093" || c.sharedAddress() {
		t.Fatalf("--advertise auto: %q %q %v", c.Advertise, c.PeerAdvertise, err)
	}
	c, err = parseConfig([]string{"--advertise", "lb.example:9092", "--peer-advertise", "auto"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.resolveAddrs(ctx); err != nil || c.Advertise != "lb.example:9092" || c.PeerAdvertise != "10.1.2.3:9092" || !c.sharedAddress() {
		t.Fatalf("--peer-advertise auto: %q %q %v", c.Advertise, c.PeerAdvertise, err)
	}
	c, _ = parseConfig([]string{"--advertise", "broker.example:9092"}, env(nil))
	if err := c.resolveAddrs(ctx); err != nil || c.Advertise != "broker.example:9092" {
		t.Fatalf("no auto: %q %v", c.Advertise, err)
	}

	for _, bad := range []string{"fe80::1", "ip-10-1-2-3"} {
		ipv4 = bad
		c, _ = parseConfig([]string{"--advertise", "lb.example:9092", "--peer-advertise", "auto"}, env(nil))
		if err := c.resolveAddrs(ctx); err == nil || !strings.Contains(err.Error(), "--peer-advertise auto") {
			t.Errorf("local-ipv4 %q: %v, want an error naming --peer-advertise auto", bad, err)
		}
	}
}
