package mgmt

import (
	"net/http"
	"time"

	"github.com/meshlet/meshlet/contracts"
)

// State is what the product is doing.
type State string

// The states the runtime reports.
const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StatePaused   State = "paused"
	StateStopping State = "stopping"
)

// Observation is the runtime's report for /v1/status.
type Observation struct {
	State State
	Ports map[string]Measured // by output port name
}

type measuredJSON struct {
	PublishLatencyP99 string  `json:"publish_latency_p99"`
	Freshness         string  `json:"freshness"`
	FreshnessSeconds  float64 `json:"freshness_seconds"`
	LastCommit        string  `json:"last_commit,omitempty"`
	ConsumerLag       int64   `json:"consumer_lag"`
	DeadLetters       int64   `json:"dead_letters"`
	ChangeLogBytes    int64   `json:"change_log_bytes"`
	// Quality is each contract rule's counters since the product started.
	Quality []qualityJSON `json:"quality"`
}

type qualityJSON struct {
	Rule       string `json:"rule"`
	Field      string `json:"field,omitempty"`
	Metric     string `json:"metric,omitempty"`
	DeadLetter bool   `json:"dead_letter"` // records breaking it go to the dead-letter topic
	Checked    uint64 `json:"checked"`
	Bad        uint64 `json:"bad"`
	Violations uint64 `json:"violations"`
}

type portStatus struct {
	Port     string        `json:"port"`
	Measured *measuredJSON `json:"measured,omitempty"`
	SLOs     []SLO         `json:"slos"`
	Error    string        `json:"error,omitempty"`
}

type statusAnswer struct {
	Product       string       `json:"product"`
	State         State        `json:"state"`
	Started       time.Time    `json:"started"`
	Uptime        string       `json:"uptime"`
	UptimeSeconds float64      `json:"uptime_seconds"`
	Healthy       bool         `json:"healthy"`
	Ports         []portStatus `json:"ports"`
	Error         string       `json:"error,omitempty"`
}

// status answers 200 whether or not the SLOs are met: healthy says which,
// so a monitor alerts on the body instead of flapping on the code. Only a
// runtime that cannot report at all makes it a 503.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	ans := statusAnswer{
		Product: s.Product.ID, State: "unknown", Started: s.Started,
		Uptime: now.Sub(s.Started).Round(time.Second).String(), UptimeSeconds: now.Sub(s.Started).Seconds(),
		Ports: []portStatus{},
	}
	if s.Observe == nil {
		ans.Error = "the runtime reports no measurements"
		s.reply(w, http.StatusServiceUnavailable, ans)
		return
	}
	obs, err := s.Observe(r.Context())
	if err != nil {
		ans.Error = err.Error()
		s.reply(w, http.StatusServiceUnavailable, ans)
		return
	}
	ans.State, ans.Healthy = obs.State, true
	for _, o := range s.Product.Outputs {
		ps := portStatus{Port: o.Name, SLOs: []SLO{}}
		m, ok := obs.Ports[o.Name]
		if !ok {
			ps.Error = "the runtime reported no measurements for this port"
			ans.Healthy = false
			ans.Ports = append(ans.Ports, ps)
			continue
		}
		ps.Measured = &measuredJSON{
			PublishLatencyP99: fmtDuration(m.PublishLatencyP99),
			Freshness:         fmtDuration(m.Freshness), FreshnessSeconds: m.Freshness.Seconds(),
			ConsumerLag: m.ConsumerLag, DeadLetters: m.DeadLetters, ChangeLogBytes: m.ChangeLogBytes,
			Quality: []qualityJSON{},
		}
		for _, q := range m.QualityViolations {
			ps.Measured.Quality = append(ps.Measured.Quality, qualityJSON{Rule: q.Rule, Field: q.Field, Metric: q.Metric,
				DeadLetter: q.DeadLetter, Checked: q.Checked, Bad: q.Bad, Violations: q.Violations})
		}
		if !m.LastCommit.IsZero() {
			ps.Measured.LastCommit = m.LastCommit.UTC().Format(time.RFC3339Nano)
		}
		var slas []contracts.SLAProperty
		if o.Contract != nil {
			slas = o.Contract.SLAProperties
		}
		ps.SLOs = orEmpty(Evaluate(slas, m))
		for _, slo := range ps.SLOs {
			if !slo.OK {
				ans.Healthy = false
			}
		}
		ans.Ports = append(ans.Ports, ps)
	}
	s.reply(w, http.StatusOK, ans)
}

// healthz is liveness and readiness in one: 200 while the product serves,
// 503 once it is stopping, so a load balancer drains it. SLO misses do
// not count here (see /v1/status).
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	state := State("unknown")
	if s.Observe != nil {
		obs, err := s.Observe(r.Context())
		if err != nil {
			s.reply(w, http.StatusServiceUnavailable, map[string]string{"status": "error", "error": err.Error()})
			return
		}
		state = obs.State
	}
	code, status := http.StatusOK, "ok"
	if state == StateStopping {
		code, status = http.StatusServiceUnavailable, "stopping"
	}
	s.reply(w, code, map[string]string{"status": status, "state": string(state)})
}
