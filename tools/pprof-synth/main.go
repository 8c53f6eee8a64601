// Command pprof-synth writes a large pprof profile with many distinct stacks, shaped like a Go
// service's: a call graph of a few thousand functions in a few dozen packages, deep stacks from
// a handful of roots, recursion, inlined frames, and some unsymbolized frames in shared
// libraries. It is encoded by github.com/google/pprof/profile, the library `go tool pprof` is
// built on, so spikeprof's own decoder is measured and checked against an independent writer.
//
//	pprof-synth -kind=cpu -samples=150000 -out=cpu.pb.gz
//
// The output depends only on the flags (a fixed seed), so benchmark runs compare like with like.
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// site is a place in a function that calls further: one Location.
type site struct {
	location *profile.Location
	callees  []int // function indexes this site may call
}

type graph struct {
	functions []*profile.Function
	sites     [][]*site // per function
	levels    []int     // depth band of each function: calls go to deeper bands (or recurse)
	roots     []int
}

func main() {
	kind := flag.String("kind", "cpu", "cpu (samples/count, cpu/nanoseconds) or heap (alloc/inuse objects and space)")
	samples := flag.Int("samples", 150000, "distinct stacks (samples) to write")
	functions := flag.Int("functions", 3000, "functions in the call graph")
	seed := flag.Uint64("seed", 1, "random seed; the output depends only on the flags")
	out := flag.String("out", "", "file to write (gzip-compressed protobuf, as Go serves profiles)")
	flag.Parse()
	if *out == "" || (*kind != "cpu" && *kind != "heap") || *samples <= 0 || *functions < 50 {
		flag.Usage()
		os.Exit(2)
	}

	rng := rand.New(rand.NewPCG(*seed, 0x5eed))
	p := newProfile(*kind)
	g := buildGraph(rng, p, *functions)
	addSamples(rng, p, g, *kind, *samples)
	if err := p.CheckValid(); err != nil {
		log.Fatalf("generated an invalid profile: %v", err)
	}
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Write(f); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d samples, %d locations, %d functions\n", *out, len(p.Sample), len(p.Location), len(p.Function))
}

func newProfile(kind string) *profile.Profile {
	p := &profile.Profile{
		TimeNanos: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano(),
		Mapping: []*profile.Mapping{
			{ID: 1, Start: 0x400000, Limit: 0x4000000, File: "/usr/local/bin/checkout", BuildID: "5f0c0ffee", HasFunctions: true, HasFilenames: true, HasLineNumbers: true, HasInlineFrames: true},
			{ID: 2, Start: 0x7f0000000000, Limit: 0x7f0000200000, File: "/lib/x86_64-linux-gnu/libc.so.6"},
			{ID: 3, Start: 0x7fff00000000, Limit: 0x7fff00002000, File: "[vdso]"},
		},
	}
	if kind == "cpu" {
		p.SampleType = []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}}
		p.PeriodType = &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}
		p.Period = 10_000_000
		p.DurationNanos = int64(30 * time.Second)
	} else {
		p.SampleType = []*profile.ValueType{
			{Type: "alloc_objects", Unit: "count"}, {Type: "alloc_space", Unit: "bytes"},
			{Type: "inuse_objects", Unit: "count"}, {Type: "inuse_space", Unit: "bytes"},
		}
		p.PeriodType = &profile.ValueType{Type: "space", Unit: "bytes"}
		p.Period = 512 * 1024
	}
	return p
}

var words = strings.Fields(`cart order payment invoice stock price tax ship user session cache
	store queue event audit auth token rate limit retry batch codec schema index search report
	ledger refund coupon promo catalog review notify email sms hook`)

var types = strings.Fields(`Server Client Handler Store Cache Queue Encoder Decoder Pool Worker
	Tx Conn Router Limiter Batch Index Reader Writer`)

var verbs = strings.Fields(`Get Put Load Save Encode Decode Handle Serve Flush Scan Merge Sort
	Hash Lookup Apply Commit Validate Render Parse Marshal Unmarshal Process Dispatch`)

func buildGraph(rng *rand.Rand, p *profile.Profile, count int) *graph {
	g := &graph{}
	packages := make([]string, 0, 48)
	for i := 0; len(packages) < 48; i++ {
		packages = append(packages, fmt.Sprintf("github.com/acme/checkout/internal/%s/%s", words[i%len(words)], words[(i*7+3)%len(words)]))
	}
	packages = append(packages, "runtime", "net/http", "encoding/json", "sync", "crypto/sha256", "compress/flate", "database/sql")

	fixed := []string{"runtime.goexit", "runtime.main", "main.main", "net/http.(*conn).serve", "runtime.mcall", "runtime.gcBgMarkWorker"}
	seen := map[string]bool{}
	for i := 0; i < count; i++ {
		var name string
		if i < len(fixed) {
			name = fixed[i]
		} else {
			for name == "" || seen[name] {
				pkg := packages[rng.IntN(len(packages))]
				verb := verbs[rng.IntN(len(verbs))]
				switch rng.IntN(6) {
				case 0:
					name = fmt.Sprintf("%s.%s%d", pkg, verb, rng.IntN(40))
				case 1:
					name = fmt.Sprintf("%s.(*%s).%s", pkg, types[rng.IntN(len(types))], verb)
				case 2:
					name = fmt.Sprintf("%s.%s.%s", pkg, types[rng.IntN(len(types))], verb)
				case 3:
					name = fmt.Sprintf("%s.%s.func%d", pkg, verb, 1+rng.IntN(4))
				case 4:
					name = fmt.Sprintf("%s.%s[go.shape.%s]", pkg, verb, []string{"int", "string", "*uint8", "struct {}"}[rng.IntN(4)])
				default:
					name = fmt.Sprintf("%s.(*%s).%s.func%d", pkg, types[rng.IntN(len(types))], verb, 1+rng.IntN(3))
				}
			}
		}
		seen[name] = true
		file := "/src/" + strings.SplitN(name, ".", 2)[0] + "/" + words[rng.IntN(len(words))] + ".go"
		fn := &profile.Function{ID: uint64(i + 1), Name: name, SystemName: name, Filename: file, StartLine: int64(10 + rng.IntN(2000))}
		p.Function = append(p.Function, fn)
		g.functions = append(g.functions, fn)
		g.levels = append(g.levels, 1+rng.IntN(40))
	}
	g.levels[0], g.levels[1], g.levels[2], g.levels[3] = 0, 1, 2, 1
	g.roots = []int{0}

	// Group functions by level, so each function calls a few deeper ones (and sometimes itself).
	byLevel := map[int][]int{}
	for i, level := range g.levels {
		byLevel[level] = append(byLevel[level], i)
	}
	nextLocation := uint64(1)
	address := uint64(0x401000)
	g.sites = make([][]*site, count)
	for i, fn := range g.functions {
		for s := 0; s < 1+rng.IntN(4); s++ {
			loc := &profile.Location{ID: nextLocation, Mapping: p.Mapping[0], Address: address}
			nextLocation++
			address += uint64(16 + rng.IntN(512))
			line := profile.Line{Function: fn, Line: fn.StartLine + int64(1+rng.IntN(80))}
			if rng.IntN(5) == 0 { // calls through one or two inlined helpers at this site
				for n := 0; n < 1+rng.IntN(2); n++ {
					inlined := g.functions[rng.IntN(count)]
					loc.Line = append(loc.Line, profile.Line{Function: inlined, Line: inlined.StartLine + int64(rng.IntN(20))})
				}
			}
			loc.Line = append(loc.Line, line)
			p.Location = append(p.Location, loc)
			st := &site{location: loc}
			for c := 0; c < 2+rng.IntN(5); c++ {
				deeper := byLevel[g.levels[i]+1+rng.IntN(3)]
				if len(deeper) > 0 {
					st.callees = append(st.callees, deeper[rng.IntN(len(deeper))])
				}
			}
			if rng.IntN(25) == 0 {
				st.callees = append(st.callees, i) // direct recursion
			}
			g.sites[i] = append(g.sites[i], st)
		}
	}
	// Wire the roots the way Go stacks start.
	g.sites[0][0].callees = []int{1, 3, 4, 5}
	g.sites[1][0].callees = []int{2}
	g.sites[2][0].callees = byLevel[3]
	g.sites[3][0].callees = byLevel[2]

	// Unsymbolized frames in shared libraries (cgo, vdso): locations without lines.
	for m := 1; m <= 2; m++ {
		for k := 0; k < 8; k++ {
			p.Location = append(p.Location, &profile.Location{ID: nextLocation, Mapping: p.Mapping[m], Address: p.Mapping[m].Start + uint64(k*64)})
			nextLocation++
		}
	}
	return g
}

func addSamples(rng *rand.Rand, p *profile.Profile, g *graph, kind string, want int) {
	unsymbolized := p.Location[len(p.Location)-16:]
	bySTack := map[string]*profile.Sample{}
	var key strings.Builder
	for len(p.Sample) < want {
		depth := 6 + int(rng.ExpFloat64()*14)
		var stack []*profile.Location // root first while walking
		fn := g.roots[0]
		for d := 0; d < depth; d++ {
			sites := g.sites[fn]
			st := sites[rng.IntN(len(sites))]
			stack = append(stack, st.location)
			if len(st.callees) == 0 {
				break
			}
			fn = st.callees[rng.IntN(len(st.callees))]
		}
		if rng.IntN(40) == 0 { // a call into libc or the vdso at the leaf
			stack = append(stack, unsymbolized[rng.IntN(len(unsymbolized))])
		}
		// Leaf first, as profiles store stacks.
		for i, j := 0, len(stack)-1; i < j; i, j = i+1, j-1 {
			stack[i], stack[j] = stack[j], stack[i]
		}
		key.Reset()
		for _, loc := range stack {
			fmt.Fprintf(&key, "%d,", loc.ID)
		}
		values := sampleValues(rng, kind)
		if s, ok := bySTack[key.String()]; ok {
			for i := range s.Value {
				s.Value[i] += values[i]
			}
			continue
		}
		s := &profile.Sample{Location: stack, Value: values}
		if kind == "heap" {
			s.NumLabel = map[string][]int64{"bytes": {values[1] / max(values[0], 1)}}
			s.NumUnit = map[string][]string{"bytes": {"bytes"}}
		}
		bySTack[key.String()] = s
		p.Sample = append(p.Sample, s)
	}
}

func sampleValues(rng *rand.Rand, kind string) []int64 {
	// A heavy tail: most stacks are seen once or twice, a few very often.
	count := int64(1 + rng.ExpFloat64()*rng.ExpFloat64()*4)
	if kind == "cpu" {
		return []int64{count, count * 10_000_000}
	}
	size := int64(16 << rng.IntN(12))
	allocObjects := count * 512 * 1024 / size
	allocSpace := allocObjects * size
	inuseObjects := allocObjects * int64(rng.IntN(3)) / 2
	if inuseObjects > allocObjects {
		inuseObjects = allocObjects
	}
	return []int64{allocObjects, allocSpace, inuseObjects, inuseObjects * size}
}
