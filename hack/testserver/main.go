// Command testserver is the tiny HTTP server the real-traffic tests deploy with the
// operator. It is built statically into an image archive by hack/node-images.sh.
//
//	GET /         200, body "<VERSION> <hostname>\n", header X-Version: <VERSION>
//	GET /healthz  200 while ready; 503 when READY_FAIL is set (a version whose readiness
//	              probe never passes) or once SIGTERM arrived
//	GET FAIL_PATH as / for its first FAIL_AFTER requests (default 0), then 500
//	              "failing <VERSION>": a version that is ready but broken on a real path,
//	              at once or once it has served a while
//	GET /metrics  Prometheus metrics: http_requests_total{code} and the latency histogram
//	              http_request_duration_seconds of the answers of / and FAIL_PATH
//	PUT /fault?fraction=F  from now on, a fraction F (0 to 1, evenly spread) of the
//	              answers of / are 500 "failing <VERSION>"; FAIL_FRACTION sets it at start
//	              (a version whose error rate is F from its first request)
//
// On SIGTERM it stops accepting connections, lets in-flight requests finish and exits:
// the plain graceful shutdown of a well-behaved app, with nothing that hides a switch
// that removes pods too early.
//
// With EXIT_CODE set it serves nothing and exits at once with that code: the container of
// a Job check that fails (1) or passes (0).
//
// Environment: VERSION (default "unknown"), PORT (default 8080), READY_FAIL, FAIL_PATH,
// FAIL_AFTER, FAIL_FRACTION, EXIT_CODE.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if code := os.Getenv("EXIT_CODE"); code != "" {
		n, err := strconv.Atoi(code)
		if err != nil {
			log.Fatalf("EXIT_CODE %q is not a number", code)
		}
		log.Printf("testserver exiting with %d", n)
		os.Exit(n)
	}
	version := envOr("VERSION", "unknown")
	addr := ":" + envOr("PORT", "8080")
	host, _ := os.Hostname()
	var stopping atomic.Bool
	readyFails := os.Getenv("READY_FAIL") != ""

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if readyFails || stopping.Load() {
			http.Error(w, "not ready\n", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	answer := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Version", version)
		fmt.Fprintf(w, "%s %s\n", version, host)
	}
	counts := newMetrics()
	counted := func(handle func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			began := time.Now()
			rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
			handle(rec, r)
			counts.observe(rec.code, time.Since(began))
		}
	}
	faults := &fault{}
	if f := os.Getenv("FAIL_FRACTION"); f != "" {
		fraction, err := strconv.ParseFloat(f, 64)
		if err == nil {
			err = faults.set(fraction)
		}
		if err != nil {
			log.Fatalf("FAIL_FRACTION: %v", err)
		}
	}
	mux.HandleFunc("/", counted(func(w http.ResponseWriter, r *http.Request) {
		if faults.fails() {
			http.Error(w, "failing "+version, http.StatusInternalServerError)
			return
		}
		answer(w, r)
	}))
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { counts.serve(w, version) })
	mux.HandleFunc("/fault", faults.handle)
	if failPath := os.Getenv("FAIL_PATH"); failPath != "" {
		failAfter, err := strconv.ParseInt(envOr("FAIL_AFTER", "0"), 10, 64)
		if err != nil {
			log.Fatalf("FAIL_AFTER: %v", err)
		}
		var served atomic.Int64
		mux.HandleFunc(failPath, counted(func(w http.ResponseWriter, r *http.Request) {
			if served.Add(1) > failAfter {
				http.Error(w, "failing "+version, http.StatusInternalServerError)
				return
			}
			answer(w, r)
		}))
	}
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	done := make(chan struct{})
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		stopping.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Printf("shutdown: %v", err)
		}
		close(done)
	}()

	log.Printf("testserver %s listening on %s", version, addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-done
	log.Printf("testserver %s stopped", version)
}

// statusRecorder remembers the status code an answer was written with, for the metrics.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
