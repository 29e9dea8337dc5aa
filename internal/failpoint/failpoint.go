// Package failpoint kills the process at named points in the code, so crash
// tests can stop a real process exactly where a crash is hardest to survive:
// between the change-log append and the commit, in the middle of a write.
//
// Points fire only when the environment variable MESHLET_FAILPOINTS names
// them, as comma-separated name=probability pairs, for example
//
//	MESHLET_FAILPOINTS=runtime/after-append=0.05,auditlog/torn-write=0.02
//
// Unset, a point costs one load of a bool.
package failpoint

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

// EnvVar names the points to arm.
const EnvVar = "MESHLET_FAILPOINTS"

var (
	enabled bool
	points  map[string]float64
)

func init() {
	spec := os.Getenv(EnvVar)
	if spec == "" {
		return
	}
	points = make(map[string]float64)
	for _, part := range strings.Split(spec, ",") {
		name, prob, ok := strings.Cut(strings.TrimSpace(part), "=")
		p, err := strconv.ParseFloat(prob, 64)
		if !ok || err != nil || p < 0 || p > 1 {
			panic("failpoint: " + EnvVar + ": want name=probability pairs, got " + part)
		}
		points[name] = p
	}
	enabled = true
}

// Fire reports whether the named point fires this time. Callers that must
// do something first (write half a frame) call it, then Die.
func Fire(name string) bool {
	if !enabled {
		return false
	}
	p, ok := points[name]
	return ok && rand.Float64() < p
}

// Hit kills the process when the named point fires.
func Hit(name string) {
	if Fire(name) {
		Die()
	}
}

// Die kills the process as a crash would: SIGKILL, no deferred calls, no
// flushing.
func Die() { die() }
