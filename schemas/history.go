package schemas

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// A product keeps the schema history of each output port beside its
// schema: dir/<version>.avsc, the row schema of every version it has
// published, numbered from 1. Checking a new schema against it needs no
// registry, so a product's CI can refuse an incompatible change before it
// is deployed; the registry stays the authority at start (Register).

// HistoryVersion is one recorded version.
type HistoryVersion struct {
	Version int
	File    string
	Schema  *Schema
}

// LoadHistory reads the versions recorded in dir, oldest first. A missing
// dir is an empty history.
func LoadHistory(dir string) ([]HistoryVersion, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("schemas: history: %w", err)
	}
	var out []HistoryVersion
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || filepath.Ext(name) != ".avsc" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(name, ".avsc"))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("schemas: history %s: %s is not named <version>.avsc (1.avsc, 2.avsc, ...)", dir, name)
		}
		file := filepath.Join(dir, name)
		s, err := Load(file)
		if err != nil {
			return nil, err
		}
		out = append(out, HistoryVersion{Version: n, File: file, Schema: s})
	}
	slices.SortFunc(out, func(a, b HistoryVersion) int { return a.Version - b.Version })
	for i, v := range out {
		if v.Version != i+1 {
			return nil, fmt.Errorf("schemas: history %s: version %d is missing (have %d)", dir, i+1, v.Version)
		}
	}
	return out, nil
}

// CheckHistory compares s with the recorded versions under level, as
// Registry.Check compares with a subject's registered ones. A version
// whose published schema equals s is reported as Registered.
func CheckHistory(subject string, s *Schema, level Compat, history []HistoryVersion) (*CheckResult, error) {
	if err := level.Validate(); err != nil {
		return nil, fmt.Errorf("schemas: subject %s: %w", subject, err)
	}
	res := &CheckResult{Subject: subject, Level: level, Next: len(history) + 1}
	olds := make([]versioned, 0, len(history))
	for i := len(history) - 1; i >= 0; i-- {
		h := history[i]
		if h.Schema.Fingerprint() == s.Fingerprint() {
			res.Registered = &Version{Version: h.Version}
			return res, nil
		}
		olds = append(olds, versioned{Version{Version: h.Version}, h.Schema.pub})
	}
	compare(res, s, olds)
	return res, nil
}

// RecordHistory adds s to the history in dir as the next version, unless
// the newest recorded version is s already. It returns the version s has.
func RecordHistory(dir string, s *Schema, rowText []byte) (version int, added bool, err error) {
	history, err := LoadHistory(dir)
	if err != nil {
		return 0, false, err
	}
	for _, h := range history {
		if h.Schema.Fingerprint() == s.Fingerprint() {
			return h.Version, false, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, false, fmt.Errorf("schemas: history: %w", err)
	}
	version = len(history) + 1
	file := filepath.Join(dir, strconv.Itoa(version)+".avsc")
	if err := os.WriteFile(file, rowText, 0o644); err != nil {
		return 0, false, fmt.Errorf("schemas: history: %w", err)
	}
	return version, true, nil
}
