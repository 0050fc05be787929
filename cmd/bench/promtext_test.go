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

func TestSumMetricsOverAgents(t *testing.T) {
	a := Metrics{
		`barge_segment_reads_total{kind="range"}`: 0,
		`barge_segment_reads_total{kind="whole"}`: 2,
		`barge_flush_seconds_bucket{le="0.1"}`:    10,
		`barge_flush_seconds_bucket{le="+Inf"}`:   10,
		"process_cpu_seconds_total":               1.5,
	}
	b := Metrics{
		`barge_segment_reads_total{kind="whole"}`: 3,
		`barge_flush_seconds_bucket{le="0.1"}`:    0,
		`barge_flush_seconds_bucket{le="+Inf"}`:   10,
		"process_cpu_seconds_total":               2,
		"only_here":                               7, // a series one agent lacks counts 0 there
	}
	sum := SumMetrics(a, b, Metrics{})
	for name, want := range map[string]float64{
		"barge_segment_reads_total": 5,
		"process_cpu_seconds_total": 3.5,
		"only_here":                 7,
	} {
		if got := sum.Sum(name); got != want {
			t.Errorf("Sum(%s) = %v, want %v", name, got, want)
		}
	}
	// The quantile of the sum is over every agent's observations: half of
	// the 20 are at most 0.1 s, the other half in +Inf.
	if got := sum.Quantile(0.5, "barge_flush_seconds"); got != 0.1 {
		t.Errorf("median of the summed histogram = %v, want 0.1", got)
	}
	if got := sum.Quantile(0.9, "barge_flush_seconds"); got != 0.1 {
		t.Errorf("p90 of the summed histogram = %v, want 0.1 (the highest finite bound)", got)
	}
	// Deltas of sums are sums of deltas.
	later := SumMetrics(Metrics{"process_cpu_seconds_total": 2}, Metrics{"process_cpu_seconds_total": 4})
	if d := later.Sub(sum).Sum("process_cpu_seconds_total"); d != 2.5 {
		t.Errorf("delta %v, want 2.5", d)
	}
	if len(a) != 5 || a["process_cpu_seconds_total"] != 1.5 {
		t.Errorf("SumMetrics changed its input: %v", a)
	}
	if n := len(SumMetrics()); n != 0 {
		t.Errorf("sum of nothing has %d series", n)
	}
}

func TestPerGiB(t *testing.T) {
	for _, c := range []struct {
		n     float64
		bytes int64
		want  float64
	}{
		{3, 1 << 30, 3},
		{3, 1 << 29, 6},
		{0, 1 << 30, 0},
		{5, 0, 0},  // nothing produced: no rate, not +Inf
		{5, -1, 0}, // a counter reset between scrapes
	} {
		if got := perGiB(c.n, c.bytes); got != c.want {
			t.Errorf("perGiB(%v, %d) = %v, want %v", c.n, c.bytes, got, c.want)
		}
	}
}
