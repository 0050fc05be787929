package main

import (
	"os"
	"strings"
	"testing"
)

const sample = `# HELP barge_objstore_requests_total Object store requests by operation and result.
# TYPE barge_objstore_requests_total counter
barge_objstore_requests_total{op="get",result="not_found"} 120
barge_objstore_requests_total{op="get",result="ok"} 2
barge_objstore_requests_total{op="get_range",result="ok"} 7
barge_objstore_requests_total{op="put",result="ok"} 40
barge_objstore_requests_total{op="put_if_absent",result="ok"} 41
barge_objstore_requests_total_extra 5
barge_flush_bytes_sum 4.194304e+07
barge_flush_bytes_count 10
odd{msg="a b}c"} 3 1700000000000
process_cpu_seconds_total 12.5
`

func TestParseMetrics(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		want []string
		sum  float64
	}{
		{"barge_objstore_requests_total", []string{`op="get"`}, 122},
		{"barge_objstore_requests_total", []string{`op="get"`, `result="ok"`}, 2},
		{"barge_objstore_requests_total", []string{`op="put"`}, 40},
		{"barge_objstore_requests_total", nil, 210},
		{"barge_flush_bytes_sum", nil, 41943040},
		{"process_cpu_seconds_total", nil, 12.5},
		{"odd", nil, 3},
		{"missing", nil, 0},
	} {
		if got := m.Sum(c.name, c.want...); got != c.sum {
			t.Errorf("Sum(%s, %v) = %v, want %v", c.name, c.want, got, c.sum)
		}
	}
	base := Metrics{"process_cpu_seconds_total": 10}
	if d := m.Sub(base).Sum("process_cpu_seconds_total"); d != 2.5 {
		t.Errorf("delta %v, want 2.5", d)
	}
}

func TestParseMetricsErrors(t *testing.T) {
	for _, bad := range []string{"x{a=\"b\" 1\n", "x\n", "x{a=\"b\"}\n", "x notanumber\n"} {
		if _, err := ParseMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

func TestParseProcStatCPU(t *testing.T) {
	line := "4242 (barge agent) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 100 0 0\n"
	got, err := parseProcStatCPU(line, 100)
	if err != nil || got != 3 {
		t.Fatalf("got %v, %v; want 3s", got, err)
	}
	if _, err := parseProcStatCPU("1 (x) S 1 2", 100); err == nil {
		t.Fatal("short line accepted")
	}
	if s, err := procCPU(os.Getpid()); err != nil || s < 0 {
		t.Fatalf("own CPU: %v, %v", s, err)
	}
}

func TestQuantileFromBuckets(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(`
barge_flush_seconds_bucket{le="0.1"} 10
barge_flush_seconds_bucket{le="0.2"} 90
barge_flush_seconds_bucket{le="0.4"} 100
barge_flush_seconds_bucket{le="+Inf"} 100
barge_request_seconds_bucket{api="produce",le="1"} 1
barge_request_seconds_bucket{api="produce",le="+Inf"} 2
barge_request_seconds_bucket{api="fetch",le="1"} 5
barge_request_seconds_bucket{api="fetch",le="+Inf"} 5
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		q    float64
		name string
		want []string
		v    float64
	}{
		{0.05, "barge_flush_seconds", nil, 0.05},
		{0.5, "barge_flush_seconds", nil, 0.15},
		{0.99, "barge_flush_seconds", nil, 0.38},
		{0.99, "barge_request_seconds", []string{`api="produce"`}, 1}, // in +Inf: the highest finite bound
		{0.5, "barge_request_seconds", []string{`api="fetch"`}, 0.5},
		{0.5, "missing", nil, 0},
	} {
		if got := m.Quantile(c.q, c.name, c.want...); got < c.v-1e-9 || got > c.v+1e-9 {
			t.Errorf("Quantile(%v, %s, %v) = %v, want %v", c.q, c.name, c.want, got, c.v)
		}
	}
}
