package bench

import (
	"math"
	"sort"
	"strconv"
)

// Result is one measurement: one repetition of one workload against one
// server.
type Result struct {
	Server    string  `json:"server"`
	Workload  string  `json:"workload"`        // key, e.g. "retr", "fanout/32"
	Clients   int     `json:"clients"`         // concurrent sessions
	Rep       int     `json:"rep"`             // 1-based
	Unit      string  `json:"unit"`            // of Value: "MB/s", "logins/s", "s", "files/s", "KiB"
	Value     float64 `json:"value"`           // the headline figure
	Bytes     int64   `json:"bytes,omitempty"` // payload moved
	Ops       int64   `json:"ops,omitempty"`   // logins, files, listings…
	Seconds   float64 `json:"seconds"`         // wall time measured
	ClientCPU float64 `json:"client_cpu_s"`    // the load generator's CPU during the run
	// ServerCPU is the server's CPU during the run, or -1 when the server
	// is not on this machine (no probe).
	ServerCPU float64 `json:"server_cpu_s"`
	Mem       *Mem    `json:"server_mem,omitempty"` // idle workload: memory per session
	Err       string  `json:"error,omitempty"`
	// Unsupported marks a server that refused the command itself (500,
	// 502, 504): not a failure of the run, a missing feature.
	Unsupported bool `json:"unsupported,omitempty"`
}

// CPUPerGiB is seconds of CPU per GiB moved, or NaN when nothing moved or
// cpu is unknown.
func CPUPerGiB(cpu float64, bytes int64) float64 {
	if cpu < 0 || bytes <= 0 {
		return math.NaN()
	}
	return cpu / (float64(bytes) / (1 << 30))
}

// Median of xs (NaN when empty); NaNs are ignored. The slice is not
// modified.
func Median(xs []float64) float64 {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m]
	}
	return (v[m-1] + v[m]) / 2
}

// MinMax of xs ignoring NaNs; NaN, NaN when none.
func MinMax(xs []float64) (lo, hi float64) {
	lo, hi = math.NaN(), math.NaN()
	for _, x := range xs {
		if math.IsNaN(x) {
			continue
		}
		if math.IsNaN(lo) || x < lo {
			lo = x
		}
		if math.IsNaN(hi) || x > hi {
			hi = x
		}
	}
	return lo, hi
}

// Ratio is a/b, NaN when either is unknown or b is 0.
func Ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return math.NaN()
	}
	return a / b
}

// HigherIsBetter says how to read a unit: rates are better high, times
// and memory low.
func HigherIsBetter(unit string) bool {
	switch unit {
	case "s", "KiB", "ms":
		return false
	}
	return true
}

// Num is a figure that may be unknown (NaN); JSON writes an unknown one
// as null, since JSON has no NaN.
type Num float64

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 6, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler (null is NaN).
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	*n = Num(f)
	return err
}

// Known reports whether n is a number.
func (n Num) Known() bool { return !math.IsNaN(float64(n)) && !math.IsInf(float64(n), 0) }

// Summary is the median over the repetitions of one workload on one
// server.
type Summary struct {
	Server   string `json:"server"`
	Workload string `json:"workload"`
	Clients  int    `json:"clients"`
	Unit     string `json:"unit"`
	N        int    `json:"n"` // successful repetitions
	Failed   int    `json:"failed"`
	Median   Num    `json:"median"`
	Min      Num    `json:"min"`
	Max      Num    `json:"max"`
	// ServerCPUPerGiB and ClientCPUPerGiB are medians, NaN for workloads
	// that move no payload or when the server is remote.
	ServerCPUPerGiB Num `json:"server_cpu_s_per_gib"`
	ClientCPUPerGiB Num `json:"client_cpu_s_per_gib"`
	// ClientCPUShare is client CPU / wall time (1.0 = one core busy).
	ClientCPUShare Num    `json:"client_cpu_share"`
	ServerCPUShare Num    `json:"server_cpu_share"`
	RSSPerSession  Num    `json:"rss_kib_per_session"`
	PSSPerSession  Num    `json:"pss_kib_per_session"`
	LastErr        string `json:"last_error,omitempty"`
	Unsupported    bool   `json:"unsupported,omitempty"`
}

// Summarize groups results by server and workload, in the order the pairs
// first appear, and takes medians.
func Summarize(rs []Result) []Summary {
	type key struct{ s, w string }
	var order []key
	groups := map[key][]Result{}
	for _, r := range rs {
		k := key{r.Server, r.Workload}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	out := make([]Summary, 0, len(order))
	for _, k := range order {
		g := groups[k]
		s := Summary{Server: k.s, Workload: k.w, Clients: g[0].Clients, Unit: g[0].Unit}
		var vals, scpu, ccpu, cshare, sshare, rss, pss []float64
		for _, r := range g {
			if r.Unsupported {
				s.Unsupported = true
				s.LastErr = r.Err
				continue
			}
			if r.Err != "" {
				s.Failed++
				s.LastErr = r.Err
				continue
			}
			s.N++
			vals = append(vals, r.Value)
			scpu = append(scpu, CPUPerGiB(r.ServerCPU, r.Bytes))
			ccpu = append(ccpu, CPUPerGiB(r.ClientCPU, r.Bytes))
			if r.Seconds > 0 {
				cshare = append(cshare, r.ClientCPU/r.Seconds)
				if r.ServerCPU >= 0 {
					sshare = append(sshare, r.ServerCPU/r.Seconds)
				}
			}
			if r.Mem != nil && r.Clients > 0 {
				rss = append(rss, float64(r.Mem.RSSKiB)/float64(r.Clients))
				pss = append(pss, float64(r.Mem.PSSKiB)/float64(r.Clients))
			}
		}
		s.Median = Num(Median(vals))
		lo, hi := MinMax(vals)
		s.Min, s.Max = Num(lo), Num(hi)
		s.ServerCPUPerGiB = Num(Median(scpu))
		s.ClientCPUPerGiB = Num(Median(ccpu))
		s.ClientCPUShare = Num(Median(cshare))
		s.ServerCPUShare = Num(Median(sshare))
		s.RSSPerSession = Num(Median(rss))
		s.PSSPerSession = Num(Median(pss))
		out = append(out, s)
	}
	return out
}
