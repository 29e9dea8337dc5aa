package mgmt

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/meshlet/meshlet/contracts"
)

// ContinuousFreshness bounds freshness for frequency "continuous" when the
// contract states no latency to bound it by.
const ContinuousFreshness = time.Minute

// Measured is what the runtime measured for one output port.
type Measured struct {
	// PublishLatencyP99 is the 99th percentile, over the runtime's recent
	// window, of source commit time to the event's publication.
	PublishLatencyP99 time.Duration
	// Freshness is how far the output trails its sources; see Freshness.
	Freshness time.Duration
	// LastCommit is the source commit time of the newest published event;
	// zero when nothing has been published.
	LastCommit        time.Time
	ConsumerLag       int64 // input records not yet processed, over all partitions
	DeadLetters       int64 // records sent to the dead-letter topic
	QualityViolations []contracts.RuleStats
	ChangeLogBytes    int64
}

// Freshness computes Measured.Freshness: now minus the latest moment the
// output is known to have held everything its sources had. That moment is
// the later of lastCommit (the source commit time of the newest published
// event) and caughtUp (when a batch last ended with no input left
// waiting). So an idle source does not make the output look stale, as
// long as the runtime keeps polling and finding nothing, while a stalled
// or lagging runtime does. Zero when neither is known.
func Freshness(now, lastCommit, caughtUp time.Time) time.Duration {
	known := lastCommit
	if caughtUp.After(known) {
		known = caughtUp
	}
	if known.IsZero() || !now.After(known) {
		return 0
	}
	return now.Sub(known)
}

// SLO is one service level objective of a contract, judged against what
// was measured.
type SLO struct {
	Name      string `json:"name"`
	Objective string `json:"objective"`
	Measured  string `json:"measured"`
	OK        bool   `json:"ok"`
	Reason    string `json:"reason,omitempty"`
}

// Evaluate judges a port's contract SLAs and quality rules against m:
//
//   - latency: PublishLatencyP99 must not exceed the value. Values read
//     "5s", "5 min", or a number with unit (ms, s, min or m, h, d, w, y,
//     and their spelled-out forms). An unknown unit cannot be judged: the
//     SLO is not OK and says so. Met while nothing has been published.
//   - frequency: Freshness must not exceed the value. "continuous" (or
//     "streaming", "real-time") bounds it by the latency objective, or
//     ContinuousFreshness when there is none; "hourly", "daily" and
//     "weekly" are 1h, 24h and 7d.
//   - retention: always met. Every version goes to the product's change
//     log, which is append-only and never deleted or compacted, so data
//     is kept longer than any retention asks (the topic's own retention is
//     the broker's setting, not measured here).
//   - each quality rule in QualityViolations: met while Violations is 0.
//     The counts are as the runtime passes them (contracts.Checker counts
//     since it was built).
//
// Other SLA properties (availability dates, support windows) concern the
// contract's life rather than the running stream and are not judged.
func Evaluate(slas []contracts.SLAProperty, m Measured) []SLO {
	var out []SLO
	latency, hasLatency := time.Duration(0), false
	for _, sla := range slas {
		if strings.EqualFold(sla.Property, "latency") {
			if d, err := slaDuration(sla.Value, sla.Unit); err == nil {
				latency, hasLatency = d, true
			}
		}
	}
	for _, sla := range slas {
		switch strings.ToLower(sla.Property) {
		case "latency":
			out = append(out, evalLatency(sla, m))
		case "frequency":
			out = append(out, evalFrequency(sla, m, latency, hasLatency))
		case "retention":
			out = append(out, SLO{
				Name: "retention", Objective: "keep " + objective(sla),
				Measured: fmt.Sprintf("every version kept in the change log (%d bytes)", m.ChangeLogBytes),
				OK:       true,
				Reason:   "the change log is append-only and never deleted or compacted, so every retention is met",
			})
		}
	}
	for _, q := range m.QualityViolations {
		slo := SLO{
			Name:      "quality " + q.Rule,
			Objective: fmt.Sprintf("%s on %s within the contract's threshold", q.Metric, q.Field),
			Measured:  fmt.Sprintf("%d violations; %d of %d records checked counted", q.Violations, q.Bad, q.Checked),
			OK:        q.Violations == 0,
		}
		if q.Object != "" {
			slo.Name = "quality " + q.Object + "." + q.Rule
		}
		if !slo.OK {
			slo.Reason = fmt.Sprintf("%d records broke the rule beyond what it tolerates", q.Violations)
		}
		out = append(out, slo)
	}
	return out
}

func evalLatency(sla contracts.SLAProperty, m Measured) SLO {
	slo := SLO{Name: "latency", Objective: "p99 event (source commit, or arrival if later) to publish <= " + objective(sla)}
	bound, err := slaDuration(sla.Value, sla.Unit)
	if err != nil {
		slo.Measured = "p99 " + fmtDuration(m.PublishLatencyP99)
		slo.Reason = "cannot evaluate: " + err.Error()
		return slo
	}
	if m.LastCommit.IsZero() && m.PublishLatencyP99 == 0 {
		slo.Measured, slo.OK, slo.Reason = "nothing published yet", true, "no event to measure"
		return slo
	}
	slo.Measured = "p99 " + fmtDuration(m.PublishLatencyP99)
	slo.OK = m.PublishLatencyP99 <= bound
	if !slo.OK {
		slo.Reason = fmt.Sprintf("p99 is %s over the objective", fmtDuration(m.PublishLatencyP99-bound))
	}
	return slo
}

func evalFrequency(sla contracts.SLAProperty, m Measured, latency time.Duration, hasLatency bool) SLO {
	slo := SLO{Name: "frequency", Measured: "freshness " + fmtDuration(m.Freshness)}
	var bound time.Duration
	word := ""
	if s, ok := sla.Value.(string); ok && sla.Unit == "" {
		word = strings.ToLower(strings.TrimSpace(s))
	}
	switch word {
	case "continuous", "continuously", "streaming", "real-time", "realtime":
		bound = ContinuousFreshness
		if hasLatency {
			bound = latency
		}
		slo.Objective = fmt.Sprintf("%s: output trails sources by <= %s", word, fmtDuration(bound))
	case "hourly":
		bound = time.Hour
	case "daily":
		bound = 24 * time.Hour
	case "weekly":
		bound = 7 * 24 * time.Hour
	default:
		d, err := slaDuration(sla.Value, sla.Unit)
		if err != nil {
			slo.Objective = "updated every " + objective(sla)
			slo.Reason = "cannot evaluate: " + err.Error()
			return slo
		}
		bound = d
	}
	if slo.Objective == "" {
		slo.Objective = fmt.Sprintf("updated every %s: output trails sources by <= %s", objective(sla), fmtDuration(bound))
	}
	slo.OK = m.Freshness <= bound
	if !slo.OK {
		slo.Reason = fmt.Sprintf("the output is %s staler than the objective", fmtDuration(m.Freshness-bound))
	}
	return slo
}

// objective renders an SLA's value and unit as the contract gives them.
func objective(sla contracts.SLAProperty) string {
	v := fmt.Sprint(sla.Value)
	if f, ok := sla.Value.(float64); ok {
		v = strconv.FormatFloat(f, 'f', -1, 64)
	}
	if sla.Unit == "" {
		return v
	}
	return v + " " + sla.Unit
}

var slaUnits = map[string]time.Duration{
	"ms": time.Millisecond, "msec": time.Millisecond, "millisecond": time.Millisecond, "milliseconds": time.Millisecond,
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	// ODCS units follow ISO, where m would be a metre; on a time SLA it
	// can only mean a minute, as in Go's durations.
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "wk": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
	"y": 365 * 24 * time.Hour, "yr": 365 * 24 * time.Hour, "year": 365 * 24 * time.Hour, "years": 365 * 24 * time.Hour,
}

// slaDuration reads an SLA value as a duration: a number with unit, or a
// string holding both ("5s", "1.5 h"), or a number in a string with unit.
func slaDuration(value any, unit string) (time.Duration, error) {
	unit = strings.ToLower(strings.TrimSpace(unit))
	var n float64
	switch v := value.(type) {
	case int:
		n = float64(v)
	case int64:
		n = float64(v)
	case uint64:
		n = float64(v)
	case float64:
		n = v
	case string:
		num, suffix := splitNumber(strings.TrimSpace(v))
		f, err := strconv.ParseFloat(num, 64)
		if num == "" || err != nil {
			return 0, fmt.Errorf("value %q is not a number with a unit", v)
		}
		n = f
		suffix = strings.ToLower(suffix)
		switch {
		case suffix == "":
		case unit == "" || unit == suffix:
			unit = suffix
		default:
			return 0, fmt.Errorf("value %q and unit %s disagree", v, unit)
		}
	case nil:
		return 0, fmt.Errorf("no value")
	default:
		return 0, fmt.Errorf("value %v is not a number", value)
	}
	if unit == "" {
		return 0, fmt.Errorf("value %v has no unit", value)
	}
	per, ok := slaUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unit %s", unit)
	}
	if n < 0 || math.IsNaN(n) {
		return 0, fmt.Errorf("value %v is negative", value)
	}
	d := n * float64(per)
	if d >= math.MaxInt64 {
		return 0, fmt.Errorf("value %v %s is too long to measure", value, unit)
	}
	return time.Duration(d), nil
}

// splitNumber splits "1.5 h" into "1.5" and "h".
func splitNumber(s string) (num, rest string) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	return s[:i], strings.TrimSpace(s[i:])
}

// fmtDuration rounds a duration for people.
func fmtDuration(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}
