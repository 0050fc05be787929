package main

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Metrics is one scrape of a Prometheus text exposition: series → value,
// keyed as they are written (`name` or `name{a="x",b="y"}`; client_golang
// writes labels sorted by name).
type Metrics map[string]float64

// ParseMetrics reads the text format, skipping comments and blank lines.
// Timestamps after the value are ignored.
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		// The series ends at the closing brace, or at the first space
		// when there are no labels (label values may hold spaces).
		end := strings.IndexByte(s, ' ')
		if i := strings.IndexByte(s, '{'); i >= 0 && (end < 0 || i < end) {
			j := strings.LastIndexByte(s, '}')
			if j < i {
				return nil, fmt.Errorf("metrics line %d: unclosed labels: %q", line, s)
			}
			end = j + 1
		}
		if end < 0 || end >= len(s) {
			return nil, fmt.Errorf("metrics line %d: no value: %q", line, s)
		}
		fields := strings.Fields(s[end:])
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics line %d: no value: %q", line, s)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", line, err)
		}
		m[s[:end]] = v
	}
	return m, sc.Err()
}

// Sum adds every series of the metric name whose labels include all of
// want (given as `k="v"` pairs).
func (m Metrics) Sum(name string, want ...string) float64 {
	var sum float64
	for k, v := range m {
		if !strings.HasPrefix(k, name) {
			continue
		}
		rest := k[len(name):]
		if rest != "" && rest[0] != '{' {
			continue // a longer name with the same prefix
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(rest, w) {
				ok = false
				break
			}
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// Sub returns m - base for every series in m (counters' deltas).
func (m Metrics) Sub(base Metrics) Metrics {
	out := make(Metrics, len(m))
	for k, v := range m {
		out[k] = v - base[k]
	}
	return out
}

// SumMetrics adds scrapes series by series: a fleet's counters and
// histogram buckets as if one process had counted them all (a series that
// only some scrapes have counts 0 in the others). Quantile of the sum is
// the quantile over every agent's observations.
func SumMetrics(ms ...Metrics) Metrics {
	out := Metrics{}
	for _, m := range ms {
		for k, v := range m {
			out[k] += v
		}
	}
	return out
}

// ScrapeAll scrapes every address and sums the scrapes (SumMetrics).
func ScrapeAll(addrs ...string) (Metrics, error) {
	ms := make([]Metrics, 0, len(addrs))
	for _, a := range addrs {
		m, err := Scrape(a)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return SumMetrics(ms...), nil
}

// Scrape fetches http://addr/metrics.
func Scrape(addr string) (Metrics, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", addr, resp.Status)
	}
	return ParseMetrics(resp.Body)
}

type cpuMark struct{ minio, self float64 }

// procCPU returns a process's user+system CPU seconds from /proc/PID/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(string(b), 100) // USER_HZ is 100 on Linux
}

func procCPUOrZero(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	s, _ := procCPU(pid)
	return s
}

func selfCPU() float64 { return procCPUOrZero(os.Getpid()) }

// parseProcStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/PID/stat line; the command name in parentheses may hold spaces.
func parseProcStatCPU(stat string, hz float64) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command name")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields", len(f)+2)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc stat: utime %q stime %q", f[11], f[12])
	}
	return (ut + st) / hz, nil
}

// Quantile estimates quantile q of histogram name (series name_bucket with
// an le label, restricted to the series whose labels include want) the way
// Prometheus' histogram_quantile does: linear within the bucket. It returns
// 0 without observations, and the highest finite bound when q falls in the
// +Inf bucket.
func (m Metrics) Quantile(q float64, name string, want ...string) float64 {
	type bucket struct{ le, n float64 }
	byLe := map[float64]float64{}
	for k, v := range m {
		rest, ok := strings.CutPrefix(k, name+"_bucket{")
		if !ok {
			continue
		}
		match := true
		for _, w := range want {
			if !strings.Contains(rest, w) {
				match = false
				break
			}
		}
		i := strings.Index(rest, `le="`)
		if !match || i < 0 {
			continue
		}
		j := strings.IndexByte(rest[i+4:], '"')
		if j < 0 {
			continue
		}
		le, err := strconv.ParseFloat(rest[i+4:i+4+j], 64) // "+Inf" parses as +Inf
		if err != nil {
			continue
		}
		byLe[le] += v
	}
	var bs []bucket
	for le, n := range byLe {
		bs = append(bs, bucket{le, n})
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(bs) == 0 || bs[len(bs)-1].n <= 0 {
		return 0
	}
	rank := q * bs[len(bs)-1].n
	prevLe, prevN := 0.0, 0.0
	for _, b := range bs {
		if b.n >= rank {
			if math.IsInf(b.le, 1) {
				return prevLe
			}
			if b.n == prevN {
				return b.le
			}
			return prevLe + (b.le-prevLe)*(rank-prevN)/(b.n-prevN)
		}
		prevLe, prevN = b.le, b.n
	}
	return prevLe
}
