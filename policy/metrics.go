package policy

import "net/netip"

// MetricsConfig is the [metrics] table: Prometheus text exposition on a
// listener of its own, off unless an address is given.
type MetricsConfig struct {
	// Listen is the host:port of the metrics endpoint; invalid (the
	// zero value) means no endpoint.
	Listen netip.AddrPort
	// MaxAccounts bounds the per-account label values: the first
	// MaxAccounts accounts that transfer get their own series, later ones
	// are summed under account="_other", so a server with ten thousand
	// accounts cannot blow up a Prometheus server.
	MaxAccounts int
}

const defaultMetricsAccounts = 50

func (p *cfgParser) metrics(t *tomlTable, m *MetricsConfig) {
	var s string
	if t.str("listen", &s) && s != "" {
		ap, err := parseListen(s)
		if err != nil {
			t.ps.add(t.key("listen"), "%v", err)
		} else {
			m.Listen = ap
		}
	}
	t.intIn("max_accounts", &m.MaxAccounts, 1, 100000)
}

// metricsCrossCheck refuses a metrics address that an FTP listener takes.
func (p *cfgParser) metricsCrossCheck(c *Config) {
	if !c.Metrics.Listen.IsValid() {
		return
	}
	for _, ap := range c.FTP.Listen {
		if ap == c.Metrics.Listen || listenOverlaps(ap, c.Metrics.Listen) {
			p.ps.add("metrics.listen", "%s is also an ftp.listen address", c.Metrics.Listen)
		}
	}
}
