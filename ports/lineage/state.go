package lineage

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/uuid"
)

// StateFile is the file, in the state dir, that records the open run.
const StateFile = "openlineage-run.json"

// runState is the open run as StateFile records it.
type runState struct {
	RunID     string      `json:"runId"`
	Namespace string      `json:"namespace"`
	Name      string      `json:"name"`
	StartedAt Timestamp   `json:"startedAt"`
	Pending   *pendingEnd `json:"pending,omitempty"`
}

// pendingEnd is a terminal event Stop could not deliver.
type pendingEnd struct {
	EventType EventType `json:"eventType"`
	Message   string    `json:"message,omitempty"`
}

// writeState replaces path with st atomically: a temporary file in the same
// directory, synced, then renamed over path.
func writeState(path string, st runState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("lineage: encoding run state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+StateFile+".*")
	if err != nil {
		return fmt.Errorf("lineage: writing run state: %w", err)
	}
	_, werr := tmp.Write(b)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("lineage: writing run state %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("lineage: writing run state: %w", err)
	}
	return nil
}

// readState reads path; a missing file is fs.ErrNotExist.
func readState(path string) (runState, error) {
	var st runState
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("run state %s: %w", path, err)
	}
	if _, err := uuid.Parse(st.RunID); err != nil {
		return st, fmt.Errorf("run state %s: run id %q: %w", path, st.RunID, err)
	}
	if st.Namespace == "" || st.Name == "" {
		return st, fmt.Errorf("run state %s: no job namespace and name", path)
	}
	if p := st.Pending; p != nil && p.EventType != EventAbort && p.EventType != EventFail {
		return st, fmt.Errorf("run state %s: pending event %q is not ABORT or FAIL", path, p.EventType)
	}
	return st, nil
}
