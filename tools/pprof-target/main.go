// Command pprof-target is what a pod "is" in spikeprof's tests: a Go process serving the real
// net/http/pprof handlers (exactly what daprd serves on :7777) and a Prometheus /metrics, with
// control endpoints that make it burn CPU, hold or steadily leak memory or spawn goroutines on
// demand, and faults that make its pprof endpoint misbehave the ways real endpoints do.
package main

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// load holds what the control endpoints asked for; every field is guarded by mu.
type load struct {
	mu         sync.Mutex
	burnStop   chan struct{}
	burnCores  int
	held       [][]byte
	goroutines []chan struct{}
	// leakStop ends the running steady leak; leaked is what it has allocated and keeps.
	leakStop chan struct{}
	leaked   [][]byte
	fault    string
	// firstPprof is when the first /debug/pprof request since start or reset arrived, so a
	// benchmark can time a trigger from spike onset to the profiler knocking.
	firstPprof time.Time
}

func main() {
	listen := flag.String("listen", "127.0.0.1:7777", "address for /metrics, /control and /debug/pprof")
	burn := flag.Int("burn", 0, "cores to burn from start-up")
	flag.Parse()

	l := &load{}
	if *burn > 0 {
		l.startBurn(*burn, 0)
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/control/burn", l.handleBurn)
	mux.HandleFunc("/control/alloc", l.handleAlloc)
	mux.HandleFunc("/control/leak", l.handleLeak)
	mux.HandleFunc("/control/goroutines", l.handleGoroutines)
	mux.HandleFunc("/control/fault", l.handleFault)
	mux.HandleFunc("/control/reset", l.handleReset)
	mux.HandleFunc("/control/first-pprof-request", l.handleFirstPprof)
	registerPprof(mux, l)

	servers := []*http.Server{serve(*listen, mux)}
	log.Printf("pprof-target pid %d listening on %s", os.Getpid(), *listen)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	for _, s := range servers {
		_ = s.Close()
	}
}

func serve(addr string, handler http.Handler) *http.Server {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("listen %s: %v", addr, err)
	}
	s := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Fatalf("serve %s: %v", addr, err)
		}
	}()
	return s
}

func registerPprof(mux *http.ServeMux, l *load) {
	pprofMux := http.NewServeMux()
	pprofMux.HandleFunc("/debug/pprof/", pprof.Index)
	pprofMux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	pprofMux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	pprofMux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	pprofMux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/pprof/", l.withFault(pprofMux))
}

// withFault makes the pprof endpoint misbehave on request, so tests provoke real failures.
func (l *load) withFault(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		fault := l.fault
		if l.firstPprof.IsZero() {
			l.firstPprof = time.Now()
		}
		l.mu.Unlock()
		switch fault {
		case "junk":
			w.Header().Set("Content-Type", "application/octet-stream")
			fmt.Fprint(w, "this is not a pprof profile\n")
		case "hang":
			<-r.Context().Done()
		case "huge":
			w.Header().Set("Content-Type", "application/octet-stream")
			chunk := make([]byte, 1<<20)
			rand.New(rand.NewSource(1)).Read(chunk)
			for i := 0; i < 200; i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "error":
			http.Error(w, "profiling is broken on purpose", http.StatusInternalServerError)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func intParam(r *http.Request, name string, fallback int) int {
	v, err := strconv.Atoi(r.URL.Query().Get(name))
	if err != nil {
		return fallback
	}
	return v
}

func (l *load) handleBurn(w http.ResponseWriter, r *http.Request) {
	cores := intParam(r, "cores", 1)
	seconds := intParam(r, "seconds", 0)
	l.startBurn(cores, time.Duration(seconds)*time.Second)
	fmt.Fprintf(w, "burning %d cores\n", cores)
}

// startBurn replaces any running burn with `cores` spinning goroutines, for `d` (0: until reset).
func (l *load) startBurn(cores int, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.burnStop != nil {
		close(l.burnStop)
		l.burnStop = nil
	}
	l.burnCores = cores
	if cores <= 0 {
		return
	}
	stop := make(chan struct{})
	l.burnStop = stop
	for i := 0; i < cores; i++ {
		go burnCPU(stop)
	}
	if d > 0 {
		time.AfterFunc(d, func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.burnStop == stop {
				close(stop)
				l.burnStop = nil
				l.burnCores = 0
			}
		})
	}
}

// burnCPU is the hot function tests look for at the top of CPU profiles.
func burnCPU(stop <-chan struct{}) {
	sum := sha256.Sum256([]byte("spikeprof"))
	for {
		select {
		case <-stop:
			return
		default:
		}
		for i := 0; i < 1000; i++ {
			sum = spinHash(sum)
		}
	}
}

func spinHash(in [32]byte) [32]byte {
	return sha256.Sum256(in[:])
}

func (l *load) handleAlloc(w http.ResponseWriter, r *http.Request) {
	mb := intParam(r, "mb", 64)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; i < mb; i++ {
		l.held = append(l.held, holdMemory(1<<20))
	}
	fmt.Fprintf(w, "holding %d MiB\n", len(l.held))
}

// holdMemory is the allocation site tests look for at the top of heap profiles.
func holdMemory(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i) // touch every page so the memory is resident, not just reserved
	}
	return b
}

// leakTick is how often the steady leak allocates: often enough that resident memory grows as
// a line at the scale of a metrics scrape, not in steps.
const leakTick = 100 * time.Millisecond

func (l *load) handleLeak(w http.ResponseWriter, r *http.Request) {
	rate, err := strconv.ParseFloat(r.URL.Query().Get("mbPerSecond"), 64)
	if err != nil || rate < 0 {
		http.Error(w, "mbPerSecond must be a number >= 0 (MiB per second; 0 stops the leak)", http.StatusBadRequest)
		return
	}
	l.startLeak(rate)
	fmt.Fprintf(w, "leaking %g MiB/s\n", rate)
}

// startLeak replaces any running leak with one growing the heap by rate MiB/s (0: none). What
// it allocated stays held until reset, like a cache that is never evicted.
func (l *load) startLeak(rate float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leakStop != nil {
		close(l.leakStop)
		l.leakStop = nil
	}
	if rate <= 0 {
		return
	}
	stop := make(chan struct{})
	l.leakStop = stop
	go l.leakSteadily(rate, stop)
}

// leakSteadily allocates by the clock, not per tick, so a late tick catches up and the
// resident memory follows rate * elapsed.
func (l *load) leakSteadily(rate float64, stop <-chan struct{}) {
	ticker := time.NewTicker(leakTick)
	defer ticker.Stop()
	start := time.Now()
	leakedBytes := 0
	for {
		select {
		case <-stop:
			return
		case now := <-ticker.C:
			due := int(rate*float64(1<<20)*now.Sub(start).Seconds()) - leakedBytes
			if due <= 0 {
				continue
			}
			chunk := leakMemory(due)
			leakedBytes += due
			l.mu.Lock()
			if l.leakStop != stop { // reset or replaced while allocating: drop this chunk
				l.mu.Unlock()
				return
			}
			l.leaked = append(l.leaked, chunk)
			l.mu.Unlock()
		}
	}
}

// leakMemory is the allocation site of the steady leak, which heap growth diffs should name.
func leakMemory(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1 // touch every page so the memory is resident, not just reserved
	}
	return b
}

func (l *load) handleGoroutines(w http.ResponseWriter, r *http.Request) {
	n := intParam(r, "n", 100)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; i < n; i++ {
		done := make(chan struct{})
		l.goroutines = append(l.goroutines, done)
		go parkGoroutine(done)
	}
	fmt.Fprintf(w, "%d extra goroutines\n", len(l.goroutines))
}

func parkGoroutine(done <-chan struct{}) { <-done }

func (l *load) handleFault(w http.ResponseWriter, r *http.Request) {
	mode := r.URL.Query().Get("mode")
	switch mode {
	case "", "none", "junk", "hang", "huge", "error":
	default:
		http.Error(w, "unknown fault mode "+strconv.Quote(mode), http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	l.fault = mode
	l.mu.Unlock()
	fmt.Fprintf(w, "fault %q\n", mode)
}

func (l *load) handleReset(w http.ResponseWriter, _ *http.Request) {
	l.startBurn(0, 0)
	l.startLeak(0)
	l.mu.Lock()
	l.held = nil
	l.leaked = nil
	for _, done := range l.goroutines {
		close(done)
	}
	l.goroutines = nil
	l.fault = ""
	l.firstPprof = time.Time{}
	l.mu.Unlock()
	fmt.Fprintln(w, "reset")
}

// handleFirstPprof reports when the first pprof request arrived, in Unix nanoseconds (0: none).
func (l *load) handleFirstPprof(w http.ResponseWriter, _ *http.Request) {
	l.mu.Lock()
	first := l.firstPprof
	l.mu.Unlock()
	if first.IsZero() {
		fmt.Fprintln(w, 0)
		return
	}
	fmt.Fprintln(w, first.UnixNano())
}
