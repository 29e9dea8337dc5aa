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
//
// When MESHLET_FAILPOINTS_ARM names a file as well, the points fire only
// once that file exists: a test lets the process run to the moment it
// chose (so much input committed, say), creates the file, and the process
// dies at the next point that fires.
package failpoint

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// EnvVar names the points to arm; ArmEnvVar the file that arms them.
const (
	EnvVar    = "MESHLET_FAILPOINTS"
	ArmEnvVar = "MESHLET_FAILPOINTS_ARM"
)

var (
	enabled bool
	points  map[string]float64
	armFile string
	armed   atomic.Bool // armFile was seen: no more stat calls
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
	armFile = os.Getenv(ArmEnvVar)
}

// Fire reports whether the named point fires this time. Callers that must
// do something first (write half a frame) call it, then Die.
func Fire(name string) bool {
	if !enabled {
		return false
	}
	p, ok := points[name]
	if !ok || !isArmed() {
		return false
	}
	return rand.Float64() < p
}

func isArmed() bool {
	if armFile == "" || armed.Load() {
		return true
	}
	if _, err := os.Stat(armFile); err != nil {
		return false
	}
	armed.Store(true)
	return true
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
