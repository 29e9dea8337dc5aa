package mgmt

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshlet/meshlet/contracts"
	"github.com/prometheus/client_golang/prometheus"
)

func sla(property string, value any, unit string) contracts.SLAProperty {
	return contracts.SLAProperty{Property: property, Value: value, Unit: unit}
}

var published = time.Date(2026, 5, 1, 11, 59, 0, 0, time.UTC)

func TestEvaluate(t *testing.T) {
	cases := []struct {
		name   string
		slas   []contracts.SLAProperty
		m      Measured
		ok     bool
		reason string // a part of Reason; "" for none
	}{
		{"latency met", []contracts.SLAProperty{sla("latency", 5, "min")},
			Measured{PublishLatencyP99: 2 * time.Second, LastCommit: published}, true, ""},
		{"latency met exactly", []contracts.SLAProperty{sla("latency", int64(5), "min")},
			Measured{PublishLatencyP99: 5 * time.Minute, LastCommit: published}, true, ""},
		{"latency missed", []contracts.SLAProperty{sla("latency", 5, "min")},
			Measured{PublishLatencyP99: 6 * time.Minute, LastCommit: published}, false, "1m0s over"},
		{"latency in one string", []contracts.SLAProperty{sla("latency", "5s", "")},
			Measured{PublishLatencyP99: 6 * time.Second, LastCommit: published}, false, "over"},
		{"latency ms", []contracts.SLAProperty{sla("latency", 500, "ms")},
			Measured{PublishLatencyP99: 499 * time.Millisecond, LastCommit: published}, true, ""},
		{"latency m means minute", []contracts.SLAProperty{sla("latency", 1.5, "m")},
			Measured{PublishLatencyP99: 80 * time.Second, LastCommit: published}, true, ""},
		{"latency bad unit", []contracts.SLAProperty{sla("latency", 5, "fortnight")},
			Measured{PublishLatencyP99: time.Second, LastCommit: published}, false, "cannot evaluate: unit fortnight"},
		{"latency bad unit in value", []contracts.SLAProperty{sla("latency", "5 parsecs", "")},
			Measured{LastCommit: published}, false, "cannot evaluate: unit parsecs"},
		{"latency no unit", []contracts.SLAProperty{sla("latency", 5, "")},
			Measured{LastCommit: published}, false, "cannot evaluate: value 5 has no unit"},
		{"latency units disagree", []contracts.SLAProperty{sla("latency", "5s", "min")},
			Measured{LastCommit: published}, false, "disagree"},
		{"latency before any event", []contracts.SLAProperty{sla("latency", 5, "s")},
			Measured{}, true, "no event"},
		{"continuous bounded by latency", []contracts.SLAProperty{sla("latency", 5, "min"), sla("frequency", "continuous", "")},
			Measured{Freshness: 4 * time.Minute}, true, ""},
		{"continuous missed", []contracts.SLAProperty{sla("latency", 5, "min"), sla("frequency", "continuous", "")},
			Measured{Freshness: 6 * time.Minute}, false, "staler"},
		{"continuous without latency", []contracts.SLAProperty{sla("frequency", "Continuous", "")},
			Measured{Freshness: ContinuousFreshness + time.Second}, false, "1s staler"},
		{"frequency as duration", []contracts.SLAProperty{sla("frequency", 1, "h")},
			Measured{Freshness: 59 * time.Minute}, true, ""},
		{"frequency daily", []contracts.SLAProperty{sla("frequency", "daily", "")},
			Measured{Freshness: 25 * time.Hour}, false, "staler"},
		{"frequency unknown word", []contracts.SLAProperty{sla("frequency", "whenever", "")},
			Measured{}, false, "cannot evaluate"},
		{"retention", []contracts.SLAProperty{sla("retention", 7, "y")},
			Measured{ChangeLogBytes: 1 << 20}, true, "never deleted"},
		{"retention with an odd unit", []contracts.SLAProperty{sla("retention", 3, "eons")},
			Measured{}, true, "never deleted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Evaluate(c.slas, c.m)
			var slo *SLO
			for i := range got {
				if got[i].Name == c.slas[len(c.slas)-1].Property {
					slo = &got[i]
				}
			}
			if slo == nil {
				t.Fatalf("no SLO %s in %+v", c.slas[len(c.slas)-1].Property, got)
			}
			if slo.OK != c.ok || (c.reason != "" && !strings.Contains(slo.Reason, c.reason)) || (c.reason == "" && slo.Reason != "") {
				t.Errorf("%+v\nwant ok %v, reason containing %q", *slo, c.ok, c.reason)
			}
			if slo.Objective == "" || slo.Measured == "" {
				t.Errorf("objective %q measured %q: both should say something", slo.Objective, slo.Measured)
			}
		})
	}
}

func TestEvaluateQuality(t *testing.T) {
	got := Evaluate([]contracts.SLAProperty{sla("generalAvailability", "2026-01-01", "")}, Measured{QualityViolations: []contracts.RuleStats{
		{Object: "orders", Rule: "order_id.duplicateValues", Field: "order_id", Metric: "duplicateValues", Checked: 100},
		{Object: "orders", Rule: "known-currency", Field: "currency", Metric: "invalidValues", Checked: 100, Bad: 4, Violations: 3},
	}})
	if len(got) != 2 {
		t.Fatalf("got %d SLOs, want 2 (one per rule, generalAvailability not judged): %+v", len(got), got)
	}
	if got[0].Name != "quality orders.order_id.duplicateValues" || !got[0].OK {
		t.Errorf("clean rule: %+v", got[0])
	}
	if got[1].Name != "quality orders.known-currency" || got[1].OK || !strings.Contains(got[1].Measured, "3 violations") {
		t.Errorf("violated rule: %+v", got[1])
	}
}

func TestSLADuration(t *testing.T) {
	for _, c := range []struct {
		value any
		unit  string
		want  time.Duration
	}{
		{5, "s", 5 * time.Second},
		{int64(2), "D", 48 * time.Hour},
		{0.5, "hours", 30 * time.Minute},
		{"5", "min", 5 * time.Minute},
		{" 1.5 h ", "", 90 * time.Minute},
		{"250ms", "ms", 250 * time.Millisecond},
		{uint64(1), "w", 7 * 24 * time.Hour},
		{7, "y", 7 * 365 * 24 * time.Hour},
	} {
		got, err := slaDuration(c.value, c.unit)
		if err != nil || got != c.want {
			t.Errorf("slaDuration(%#v, %q) = %v, %v; want %v", c.value, c.unit, got, err, c.want)
		}
	}
	for _, c := range []struct {
		value any
		unit  string
	}{{nil, "s"}, {"soon", ""}, {-1, "s"}, {"-1s", ""}, {true, "s"}, {1e12, "y"}, {5, "lightyear"}} {
		if got, err := slaDuration(c.value, c.unit); err == nil {
			t.Errorf("slaDuration(%#v, %q) = %v, want an error", c.value, c.unit, got)
		}
	}
}

func TestFreshness(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name               string
		lastCommit, caught time.Time
		want               time.Duration
	}{
		{"nothing known", time.Time{}, time.Time{}, 0},
		{"lagging: age of newest published commit", now.Add(-time.Minute), now.Add(-time.Hour), time.Minute},
		{"idle source, runtime polling", now.Add(-2 * time.Hour), now.Add(-time.Second), time.Second},
		{"caught up, never published", time.Time{}, now.Add(-3 * time.Second), 3 * time.Second},
		{"clock skew: commit in the future", now.Add(time.Second), time.Time{}, 0},
	} {
		if got := Freshness(now, c.lastCommit, c.caught); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t)
	measured := Measured{PublishLatencyP99: time.Second, Freshness: 2 * time.Second, LastCommit: published, ConsumerLag: 7,
		QualityViolations: []contracts.RuleStats{{Object: "orders", Rule: "known-currency", Metric: "invalidValues", Field: "currency",
			DeadLetter: true, Checked: 40, Bad: 3}}}
	f.s.Observe = func(context.Context) (Observation, error) {
		return Observation{State: StateRunning, Ports: map[string]Measured{"orders": measured}}, nil
	}
	w := f.do(t, "GET", "/v1/status", "", "")
	ans := decode[statusAnswer](t, w)
	if w.Code != 200 || !ans.Healthy || ans.State != StateRunning || ans.Product != "shop.orders" {
		t.Fatalf("%d %+v", w.Code, ans)
	}
	// The fixture's clock starts an hour after Started.
	if ans.UptimeSeconds != 3600 || ans.Uptime != "1h0m0s" {
		t.Errorf("uptime %q %v", ans.Uptime, ans.UptimeSeconds)
	}
	p := ans.Ports[0]
	if p.Port != "orders" || len(p.SLOs) != 3 || p.Measured.ConsumerLag != 7 || p.Measured.Freshness != "2s" {
		t.Errorf("port status %+v %+v", p, p.Measured)
	}
	if q := p.Measured.Quality; len(q) != 1 || q[0] != (qualityJSON{Rule: "known-currency", Field: "currency", Metric: "invalidValues",
		DeadLetter: true, Checked: 40, Bad: 3}) {
		t.Errorf("quality counters %+v", q)
	}

	// A missed SLO is still a 200, with healthy false.
	measured.PublishLatencyP99 = 10 * time.Minute
	w = f.do(t, "GET", "/v1/status", "", "")
	ans = decode[statusAnswer](t, w)
	if w.Code != 200 || ans.Healthy {
		t.Errorf("missed latency: %d healthy %v", w.Code, ans.Healthy)
	}

	// A port the runtime does not report on is not healthy.
	f.s.Observe = func(context.Context) (Observation, error) { return Observation{State: StatePaused}, nil }
	ans = decode[statusAnswer](t, f.do(t, "GET", "/v1/status", "", ""))
	if ans.Healthy || ans.State != StatePaused || ans.Ports[0].Error == "" {
		t.Errorf("unreported port: %+v", ans)
	}

	f.s.Observe = func(context.Context) (Observation, error) { return Observation{}, errors.New("runtime gone") }
	if w := f.do(t, "GET", "/v1/status", "", ""); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "runtime gone") {
		t.Errorf("failing Observe: %d %s", w.Code, w.Body)
	}
}

func TestHealthz(t *testing.T) {
	f := newFixture(t)
	for state, want := range map[State]int{StateRunning: 200, StatePaused: 200, StateStarting: 200, StateStopping: 503} {
		f.s.Observe = func(context.Context) (Observation, error) { return Observation{State: state}, nil }
		if w := f.do(t, "GET", "/healthz", "", ""); w.Code != want {
			t.Errorf("%s: %d, want %d", state, w.Code, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "meshlet_test_events_total", Help: "Test events.",
		ConstLabels: prometheus.Labels{"data_product": "shop.orders"}})
	f.reg.MustRegister(c)
	c.Add(3)
	w := f.do(t, "GET", "/metrics", "", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `meshlet_test_events_total{data_product="shop.orders"} 3`) {
		t.Errorf("/metrics: %d\n%s", w.Code, w.Body)
	}
}
