package query

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/meshlet/meshlet/auditlog"
)

// LogJSON is one change log as /v1/changelog reports it.
type LogJSON struct {
	Name       string          `json:"name"`
	Entries    uint64          `json:"entries"`
	Bytes      int64           `json:"bytes"` // its segment files
	LastSystem *string         `json:"last_system"`
	Head       string          `json:"head"`       // hash of the last entry, hex
	Checkpoint *CheckpointJSON `json:"checkpoint"` // the latest signed one; null: none yet
}

// CheckpointJSON is a log's latest signed checkpoint and what checking it
// found: its signature against the product's verifier key, and its root
// against the Merkle tree kept beside the log. Neither reads the whole
// log; /v1/changelog/verify does.
type CheckpointJSON struct {
	Size   uint64 `json:"size"`
	Origin string `json:"origin,omitempty"`
	Root   string `json:"root,omitempty"` // base64, as in the note
	Note   string `json:"note"`           // the signed note, to keep for a later audit verify-since
	Behind uint64 `json:"behind"`         // entries appended since it was signed
	// Signature is "verified", "failed" or "unchecked" (no verifier key).
	Signature string `json:"signature"`
	// Tree is "matches" (the tree beside the log gives the signed root),
	// "differs", or "unchecked".
	Tree     string `json:"tree"`
	Verified bool   `json:"verified"` // signature verified and tree matches
	Error    string `json:"error,omitempty"`
}

type changelogAnswer struct {
	Logs     []LogJSON `json:"logs"`
	Entries  uint64    `json:"entries"`
	Bytes    int64     `json:"bytes"`
	Verifier string    `json:"verifier,omitempty"` // the checkpoint key's name
}

// changelog reports every log's size and checks its latest checkpoint.
func (h *Handler) changelog(w http.ResponseWriter, r *http.Request) {
	if !h.fresh(w) {
		return
	}
	ans := changelogAnswer{Logs: []LogJSON{}}
	if h.Verifier != nil {
		ans.Verifier = h.Verifier.Name()
	}
	for _, li := range h.Store.Logs() {
		l := LogJSON{Name: li.Name, Entries: li.Entries, Bytes: segmentBytes(li.Dir), Head: hex.EncodeToString(li.Head[:])}
		if li.Entries > 0 {
			l.LastSystem = optTime(li.LastSystem)
		}
		cp, err := h.latestCheckpoint(li)
		if err != nil {
			h.fail(w, err)
			return
		}
		l.Checkpoint = cp
		ans.Logs = append(ans.Logs, l)
		ans.Entries += l.Entries
		ans.Bytes += l.Bytes
	}
	h.reply(w, http.StatusOK, ans)
}

func (h *Handler) latestCheckpoint(li auditlog.LogInfo) (*CheckpointJSON, error) {
	sizes, err := auditlog.Checkpoints(li.Dir)
	if err != nil || len(sizes) == 0 {
		return nil, err
	}
	size := sizes[len(sizes)-1]
	msg, err := os.ReadFile(auditlog.NotePath(li.Dir, size))
	if err != nil {
		return nil, fmt.Errorf("checkpoint of %s: %w", li.Name, err)
	}
	c := &CheckpointJSON{Size: size, Note: string(msg), Signature: "unchecked", Tree: "unchecked"}
	if li.Entries > size {
		c.Behind = li.Entries - size
	}
	if h.Verifier == nil {
		c.Error = "no verifier key: the signature is not checked"
		return c, nil
	}
	cp, err := auditlog.OpenCheckpoint(msg, h.Verifier)
	if err != nil {
		c.Signature, c.Error = "failed", err.Error()
		return c, nil
	}
	c.Signature, c.Origin, c.Root = "verified", cp.Origin, base64.StdEncoding.EncodeToString(cp.Root[:])
	if cp.Size != size {
		c.Error = fmt.Sprintf("the note in %s signs a tree of %d entries", filepath.Base(auditlog.NotePath(li.Dir, size)), cp.Size)
		return c, nil
	}
	// A consistency proof from the size to itself has no nodes: it asks the
	// tree beside the log for its root at that size.
	p, err := h.Store.ProveConsistency(li.Name, size, size)
	switch {
	case err != nil:
		c.Tree, c.Error = "differs", err.Error()
	case p.Root1 != cp.Root:
		c.Tree = "differs"
		c.Error = fmt.Sprintf("the Merkle tree beside %s gives root %s for %d entries, but the checkpoint signed %s: run meshlet audit verify-since to find where the log changed",
			li.Name, base64.StdEncoding.EncodeToString(p.Root1[:]), size, c.Root)
	default:
		c.Tree, c.Verified = "matches", true
	}
	return c, nil
}

// VerifyJSON is one log's full check.
type VerifyJSON struct {
	Name       string `json:"name"`
	Checkpoint uint64 `json:"checkpoint"` // the size of the checkpoint it was checked against; 0: none, chain only
	Entries    uint64 `json:"entries"`
	Verified   bool   `json:"verified"`
	Error      string `json:"error,omitempty"`
}

type verifyAnswer struct {
	Verified bool         `json:"verified"` // every log checks out
	Logs     []VerifyJSON `json:"logs"`
}

// verify walks every log: its hash chain, and its entries against its
// latest signed checkpoint (auditlog.VerifySince). It reads whole logs, so
// one runs at a time; another asked meanwhile is told to retry.
func (h *Handler) verify(w http.ResponseWriter, r *http.Request) {
	if h.Verifier == nil {
		h.reply(w, http.StatusServiceUnavailable, errorAnswer{"no verifier key on this replica: checkpoints cannot be checked"})
		return
	}
	if !h.verifying.TryLock() {
		w.Header().Set("Retry-After", "2")
		h.reply(w, http.StatusTooManyRequests, errorAnswer{"a full verification is running; retry when it is done"})
		return
	}
	defer h.verifying.Unlock()
	if !h.fresh(w) {
		return
	}
	ans := verifyAnswer{Verified: true, Logs: []VerifyJSON{}}
	for _, li := range h.Store.Logs() {
		v := VerifyJSON{Name: li.Name}
		sizes, err := auditlog.Checkpoints(li.Dir)
		if err == nil && len(sizes) > 0 {
			v.Checkpoint = sizes[len(sizes)-1]
			var msg []byte
			if msg, err = os.ReadFile(auditlog.NotePath(li.Dir, v.Checkpoint)); err == nil {
				var rep auditlog.SinceReport
				rep, err = auditlog.VerifySince(li.Dir, msg, h.Verifier)
				v.Entries = rep.Size
			}
		} else if err == nil {
			var rep auditlog.VerifyReport
			rep, err = auditlog.Verify(li.Dir)
			v.Entries = rep.Entries
		}
		if err != nil {
			v.Error = err.Error()
		}
		v.Verified = err == nil
		ans.Verified = ans.Verified && v.Verified
		ans.Logs = append(ans.Logs, v)
	}
	h.reply(w, http.StatusOK, ans)
}

// segmentBytes is the size of a log's segment files.
func segmentBytes(dir string) int64 {
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}
