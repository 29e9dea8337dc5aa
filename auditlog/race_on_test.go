//go:build race

package auditlog

// raceEnabled shortens the slowest property tests under the race detector,
// which runs them about ten times slower.
const raceEnabled = true
