//go:build race

package mgmt

// raceEnabled shortens the flood test under the race detector, which
// runs net/http's parsing of 1 MB request lines about ten times slower.
const raceEnabled = true
