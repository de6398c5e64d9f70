package main

// What the test server counts for Prometheus (GET /metrics, the text exposition format,
// written by hand: the server stays one static binary with no module to download), and
// the fault switch that makes a chosen fraction of its answers fail.

import (
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Upper bounds of the latency histogram's buckets, in seconds (+Inf is implied).
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// metrics counts the app's answers (not /healthz nor /metrics: a readiness probe every
// second would dilute an error rate) by status code, and their latency.
type metrics struct {
	mu      sync.Mutex
	codes   map[int]uint64
	buckets []uint64 // answers per bucket (made cumulative when written)
	count   uint64
	sum     float64
}

func newMetrics() *metrics {
	return &metrics{codes: map[int]uint64{}, buckets: make([]uint64, len(latencyBuckets))}
}

func (m *metrics) observe(code int, took time.Duration) {
	seconds := took.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.codes[code]++
	m.count++
	m.sum += seconds
	for i, bound := range latencyBuckets {
		if seconds <= bound {
			m.buckets[i]++
			break
		}
	}
}

func (m *metrics) serve(w http.ResponseWriter, version string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(w, "# HELP http_requests_total Answers of the app's paths, by status code.")
	fmt.Fprintln(w, "# TYPE http_requests_total counter")
	codes := make([]int, 0, len(m.codes))
	for code := range m.codes {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	for _, code := range codes {
		fmt.Fprintf(w, "http_requests_total{code=\"%d\"} %d\n", code, m.codes[code])
	}
	fmt.Fprintln(w, "# HELP http_request_duration_seconds How long the app's answers took.")
	fmt.Fprintln(w, "# TYPE http_request_duration_seconds histogram")
	var cumulative uint64
	for i, bound := range latencyBuckets {
		cumulative += m.buckets[i]
		le := strconv.FormatFloat(bound, 'g', -1, 64)
		fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=\"%s\"} %d\n", le, cumulative)
	}
	fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", m.count)
	fmt.Fprintf(w, "http_request_duration_seconds_sum %g\n", m.sum)
	fmt.Fprintf(w, "http_request_duration_seconds_count %d\n", m.count)
	fmt.Fprintln(w, "# HELP testserver_info The test server's version.")
	fmt.Fprintln(w, "# TYPE testserver_info gauge")
	fmt.Fprintf(w, "testserver_info{version=%q} 1\n", version)
}

// fault fails a fraction of the answers, spread evenly: answer n fails when
// floor(n*f) > floor((n-1)*f), so any run of k answers fails k*f of them, give or take one.
type fault struct {
	permille atomic.Int64 // the fraction, in thousandths
	served   atomic.Int64
}

func (f *fault) set(fraction float64) error {
	if math.IsNaN(fraction) || fraction < 0 || fraction > 1 {
		return fmt.Errorf("the fraction must be between 0 and 1, not %v", fraction)
	}
	f.permille.Store(int64(math.Round(fraction * 1000)))
	return nil
}

func (f *fault) fails() bool {
	p := f.permille.Load()
	if p == 0 {
		return false
	}
	n := f.served.Add(1)
	return n*p/1000 > (n-1)*p/1000
}

// handle serves PUT /fault?fraction=F (the switch, as a test flips it on running pods)
// and GET /fault (the fraction now).
func (f *fault) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut || r.Method == http.MethodPost {
		fraction, err := strconv.ParseFloat(r.URL.Query().Get("fraction"), 64)
		if err == nil {
			err = f.set(fraction)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	fmt.Fprintf(w, "fraction %g\n", float64(f.permille.Load())/1000)
}
