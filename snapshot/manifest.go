package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Kind is what a Parquet file of a snapshot holds.
type Kind string

const (
	// Table is the table as believed at system time T about valid time V:
	// one row per entity, the entry Store.AsOf(T).ValidAt(V).Get answers.
	Table Kind = "table"
	// History is every version of every entity recorded by T, with both
	// periods, and the deleted periods as rows with _deleted true.
	History Kind = "history"
)

// ManifestName is the manifest's file name in a snapshot directory.
const ManifestName = "manifest.json"

// SchemaName is the published schema's copy in a snapshot directory.
const SchemaName = "schema.avsc"

// manifestFormat is the version of the manifest's layout.
const manifestFormat = 1

// Manifest describes a snapshot: what it is of, where in the change log
// and the output topic it stands, which files hold it, and the signed
// checkpoints it is proven against. It is written as JSON beside the
// files; times are unix microseconds, with RFC 3339 copies for people.
type Manifest struct {
	Format  int    `json:"format"`
	Product string `json:"product"` // the product's URN
	Port    string `json:"port"`    // the output port
	Topic   string `json:"topic"`   // the output port's topic
	// LogPort is the port as the change log names it, empty for the
	// product's first output port (see Product.LogPort).
	LogPort string `json:"logPort,omitempty"`

	Schema Schema `json:"schema"`

	// System is T: the snapshot holds every entry recorded at or before it
	// (exactly the entries of Logs) and no other.
	System     int64  `json:"systemTimeMicros"`
	SystemText string `json:"systemTime"`
	// Valid is V, the valid time the table file is about.
	Valid     int64  `json:"validTimeMicros"`
	ValidText string `json:"validTime"`
	TakenAt   string `json:"takenAt"` // wall clock, for people; part of nothing proven

	// Logs is the change-log position: per log, the entries taken in and
	// the signed checkpoint that covers them.
	Logs []LogPosition `json:"logs"`
	// Offsets are where a consumer continues on the output topic: every
	// record before them was recorded at or before System (see Covers).
	Offsets []Offset `json:"outputOffsets"`

	// PII lists the fields that may read as null because they are sealed;
	// Opened says the snapshot was taken with the subjects' keys
	// (Source.Keys), so sealed fields read in clear where not forgotten.
	PII    []string `json:"pii,omitempty"`
	Opened bool     `json:"piiOpened,omitempty"`

	Files []File `json:"files"`
	// Digest is the SHA-256 over every file's Digest, in order (hex).
	Digest string `json:"contentSha256"`
}

// Schema names the output port's published schema the columns come from.
type Schema struct {
	ID          int    `json:"id"`
	Fingerprint string `json:"fingerprint"` // SHA-256 of the published text (schemas.Schema.Fingerprint), hex
	File        string `json:"file"`        // its copy in the snapshot directory
}

// LogPosition is one change log's part in a snapshot.
type LogPosition struct {
	Name    string `json:"name"`    // as the store names it, e.g. "inventory.products.cdc-0"
	Entries uint64 `json:"entries"` // entries 1..Entries are in the snapshot
	// Checkpoint is the signed checkpoint (a C2SP note, as
	// auditlog.Log.Checkpoint writes it) whose tree covers Entries; absent
	// for a log with no entries in the snapshot.
	Checkpoint *CheckpointRef `json:"checkpoint,omitempty"`
}

// CheckpointRef is a signed checkpoint, with its parsed fields for people.
type CheckpointRef struct {
	Size uint64 `json:"size"`
	Root string `json:"root"` // base64, as in the note
	Note string `json:"note"` // the whole signed note
}

// Offset is a position on the output topic.
type Offset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// File is one Parquet file of a snapshot.
type File struct {
	Kind   Kind   `json:"kind"`
	Path   string `json:"path"` // relative to the snapshot directory
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"` // of the file's bytes, hex
	// Digest is the SHA-256 of the file's schema and rows in a canonical
	// encoding (see the package doc), hex: what Verify re-derives from the
	// change log, whatever Parquet encoder wrote the bytes.
	Digest string `json:"rowsSha256"`
}

// File returns the manifest's file of kind k.
func (m *Manifest) File(k Kind) (File, bool) {
	for _, f := range m.Files {
		if f.Kind == k {
			return f, true
		}
	}
	return File{}, false
}

// ReadManifest reads DIR/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestName)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	// A manifest is small; bound what a damaged or hostile one can make us read.
	b, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("snapshot: %s: %w", path, err)
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("snapshot: %s is over %d bytes: not a manifest", path, maxManifest)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("snapshot: %s: %w", path, err)
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("snapshot: %s: format %d, this reader knows %d", path, m.Format, manifestFormat)
	}
	for _, fl := range m.Files {
		if fl.Path == "" || filepath.IsAbs(fl.Path) || !filepath.IsLocal(fl.Path) {
			return nil, fmt.Errorf("snapshot: %s: file path %q is not inside the snapshot directory", path, fl.Path)
		}
	}
	if m.Schema.File != "" && !filepath.IsLocal(m.Schema.File) {
		return nil, fmt.Errorf("snapshot: %s: schema path %q is not inside the snapshot directory", path, m.Schema.File)
	}
	return &m, nil
}

const maxManifest = 16 << 20

func formatMicros(us int64) string {
	return time.UnixMicro(us).UTC().Format(time.RFC3339Nano)
}
