package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/parquet-go/parquet-go"
	"golang.org/x/mod/sumdb/note"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/query"
)

// ErrMismatch is what every *MismatchError unwraps to: the snapshot is not
// what its manifest and the change log say it is.
var ErrMismatch = errors.New("snapshot does not match")

// MismatchError names the first place a snapshot differs from what its
// manifest promises or the change log derives.
type MismatchError struct {
	File   string // the file, relative to the snapshot directory ("" for the manifest itself)
	Row    int64  // 0-based row of the file, -1 when not about a row
	Key    string // the row's entity key, when known
	Column string // the first column that differs, when known
	Reason string
}

func (e *MismatchError) Error() string {
	s := "snapshot does not match"
	if e.File != "" {
		s += ": " + e.File
	}
	if e.Row >= 0 {
		s += fmt.Sprintf(" row %d", e.Row)
	}
	if e.Key != "" {
		s += fmt.Sprintf(" (key %q)", e.Key)
	}
	if e.Column != "" {
		s += " column " + e.Column
	}
	return s + ": " + e.Reason
}

func (e *MismatchError) Unwrap() error { return ErrMismatch }

func mismatch(file string, format string, args ...any) *MismatchError {
	return &MismatchError{File: file, Row: -1, Reason: fmt.Sprintf(format, args...)}
}

// Report is what Verify proved.
type Report struct {
	Manifest *Manifest
	// Logs is, per log with entries in the snapshot, the proof that the
	// log on disk extends the checkpoint the manifest names.
	Logs []auditlog.SinceReport
	Rows map[Kind]int64
}

// Verify proves the snapshot in dir against the change log. It checks, in
// order: every file's size and SHA-256 against the manifest; that the
// published schema of the manifest's id (as src finds it) has the
// manifest's fingerprint; for every log, that the checkpoint the manifest
// names is signed by v, is for that log, covers the entries the snapshot
// takes, and that the log on disk extends it (auditlog.VerifySince: the
// hash chain walked and the Merkle tree recomputed from the entries); that
// no log holds entries recorded by T that the snapshot leaves out; and
// finally re-derives every row from those entries, exactly as Take does,
// and compares them one by one with the rows read back from the files and
// their digests with the manifest's.
//
// v is the product's checkpoint verifier key, obtained independently of
// the snapshot (auditlog.ReadVerifier). A snapshot taken with the
// subjects' keys (the manifest's piiOpened) needs them in src.Keys: a subject
// forgotten since shows as a mismatch, which is right: the snapshot
// still holds what was forgotten.
func Verify(ctx context.Context, dir string, src Source, v note.Verifier) (*Report, error) {
	if v == nil {
		return nil, errors.New("snapshot: Verify needs the product's checkpoint verifier key")
	}
	if src.Store == nil {
		return nil, errors.New("snapshot: Source.Store is nil")
	}
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	rep := &Report{Manifest: m, Rows: map[Kind]int64{}}
	if err := checkKinds(kindsOf(m)); err != nil {
		return nil, mismatch(ManifestName, "%v", err)
	}
	for _, f := range m.Files {
		if err := checkFile(dir, f); err != nil {
			return nil, err
		}
	}
	if m.Digest != contentDigest(m.Files) {
		return nil, mismatch(ManifestName, "contentSha256 %s is not the digest of the files' row digests", m.Digest)
	}
	if m.Opened && src.Keys == nil {
		return nil, errors.New("snapshot: taken with the subjects' keys (piiOpened): Verify needs them in Source.Keys")
	}

	dec, err := query.NewDecoder(src.SchemaDir, src.Registry)
	if err != nil {
		return nil, err
	}
	if m.Opened {
		dec.Keys = src.Keys
	}
	_, sch, err := loadSchema(ctx, dec, m.Schema.ID)
	if err != nil {
		return nil, err
	}
	if fp := sch.Fingerprint(); hex.EncodeToString(fp[:]) != m.Schema.Fingerprint {
		return nil, mismatch(ManifestName, "schema id %d has fingerprint %x, the manifest says %s", m.Schema.ID, fp, m.Schema.Fingerprint)
	}

	if rep.Logs, err = proveLogs(src.Store, m, v); err != nil {
		return nil, err
	}

	d := &deriver{st: src.Store, dec: dec, cut: m.cut(), system: m.System, valid: m.Valid, port: m.LogPort}
	readers := map[Kind]*fileReader{}
	for _, f := range m.Files {
		l, err := newLayout(f.Kind, sch.Fields(), m.PII)
		if err != nil {
			return nil, fmt.Errorf("snapshot: schema id %d: %w", m.Schema.ID, err)
		}
		r, err := openFileReader(dir, f.Path, l, f.Rows)
		if err != nil {
			return nil, err
		}
		defer r.close()
		readers[f.Kind] = r
		switch f.Kind {
		case Table:
			d.table = newRowBuilder(l)
		case History:
			d.hist = newRowBuilder(l)
		}
	}
	err = d.run(ctx, func(k Kind, row parquet.Row) error { return readers[k].expect(row) })
	if err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		r := readers[f.Kind]
		if err := r.end(); err != nil {
			return nil, err
		}
		if r.rows != f.Rows {
			return nil, mismatch(f.Path, "the change log derives %d rows, the manifest says %d", r.rows, f.Rows)
		}
		if got := r.dig.sum(); got != f.Digest {
			return nil, mismatch(f.Path, "rows digest %s, the manifest says %s", got, f.Digest)
		}
		rep.Rows[f.Kind] = r.rows
	}
	return rep, nil
}

func kindsOf(m *Manifest) []Kind {
	ks := make([]Kind, len(m.Files))
	for i, f := range m.Files {
		ks[i] = f.Kind
	}
	return ks
}

// checkFile compares a file's size and SHA-256 with the manifest's.
func checkFile(dir string, f File) error {
	fh, err := os.Open(filepath.Join(dir, f.Path))
	if err != nil {
		return mismatch(f.Path, "%v", err)
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return fmt.Errorf("snapshot: %s: %w", f.Path, err)
	}
	if n != f.Bytes {
		return mismatch(f.Path, "%d bytes, the manifest says %d", n, f.Bytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return mismatch(f.Path, "SHA-256 %s, the manifest says %s: the file was changed", got, f.SHA256)
	}
	return nil
}

// proveLogs checks each log's checkpoint and that the cut is all of T.
func proveLogs(st *auditlog.Store, m *Manifest, v note.Verifier) ([]auditlog.SinceReport, error) {
	named := map[string]bool{}
	var out []auditlog.SinceReport
	infos := map[string]auditlog.LogInfo{}
	for _, l := range st.Logs() {
		infos[l.Name] = l
	}
	for _, lp := range m.Logs {
		if named[lp.Name] {
			return nil, mismatch(ManifestName, "log %s named twice", lp.Name)
		}
		named[lp.Name] = true
		info, ok := infos[lp.Name]
		if !ok {
			return nil, mismatch(ManifestName, "log %s is not in the store", lp.Name)
		}
		if lp.Entries > 0 {
			sr, err := proveLog(info, lp, v)
			if err != nil {
				return nil, err
			}
			out = append(out, sr)
		}
		// The proof first: a damaged log also stops its index short.
		if n, err := st.Position(lp.Name, m.System); err != nil {
			return nil, err
		} else if n != lp.Entries {
			return nil, mismatch(ManifestName, "log %s holds %d entries recorded by %s, the snapshot takes %d", lp.Name, n, m.SystemText, lp.Entries)
		}
	}
	for name := range infos {
		if named[name] {
			continue
		}
		if n, err := st.Position(name, m.System); err != nil {
			return nil, err
		} else if n > 0 {
			return nil, mismatch(ManifestName, "log %s holds %d entries recorded by %s that the snapshot leaves out", name, n, m.SystemText)
		}
	}
	return out, nil
}

// proveLog checks the checkpoint a log's position names and that the log
// on disk extends it.
func proveLog(info auditlog.LogInfo, lp LogPosition, v note.Verifier) (auditlog.SinceReport, error) {
	if lp.Checkpoint == nil {
		return auditlog.SinceReport{}, fmt.Errorf("%w: log %s: the manifest names no checkpoint for entries 1..%d", ErrNotProven, lp.Name, lp.Entries)
	}
	cp, err := auditlog.OpenCheckpoint([]byte(lp.Checkpoint.Note), v)
	if err != nil {
		return auditlog.SinceReport{}, fmt.Errorf("%w: log %s: %w", ErrNotProven, lp.Name, err)
	}
	if cp.Size != lp.Checkpoint.Size || rootText(cp.Root) != lp.Checkpoint.Root {
		return auditlog.SinceReport{}, mismatch(ManifestName, "log %s: the checkpoint's size and root are %d %s, the manifest's fields say %d %s",
			lp.Name, cp.Size, rootText(cp.Root), lp.Checkpoint.Size, lp.Checkpoint.Root)
	}
	if cp.Size < lp.Entries {
		return auditlog.SinceReport{}, fmt.Errorf("%w: log %s: the checkpoint covers %d entries, the snapshot takes %d", ErrNotProven, lp.Name, cp.Size, lp.Entries)
	}
	sr, err := auditlog.VerifySince(info.Dir, []byte(lp.Checkpoint.Note), v)
	if err != nil {
		return auditlog.SinceReport{}, fmt.Errorf("%w: log %s: %w", ErrNotProven, lp.Name, err)
	}
	return sr, nil
}

// fileReader reads a Parquet file's rows back in order for comparison.
type fileReader struct {
	path   string
	f      *os.File
	l      *layout
	pf     *parquet.File
	rgs    []parquet.RowGroup
	rr     parquet.Rows
	buf    []parquet.Row
	have   int // rows in buf
	next   int // next row of buf
	rows   int64
	dig    *digester
	want   []byte
	got    []byte
	total  int64 // rows the file declares (and the manifest)
	read   int64 // rows read so far
	stalls int
}

// openFileReader opens a snapshot file whose manifest says it holds rows
// rows. A file whose metadata says otherwise is refused before a row is
// read, and no more rows than that are ever read: run-length encoding
// lets a few bytes claim billions of rows.
func openFileReader(dir, path string, l *layout, rows int64) (_ *fileReader, err error) {
	defer guard(path, &err)
	f, err := os.Open(filepath.Join(dir, path))
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	pf, err := openParquet(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, mismatch(path, "not a Parquet file: %v", err)
	}
	if got, want := pf.Schema().String(), l.schema.String(); got != want {
		f.Close()
		return nil, mismatch(path, "schema\n%s\nbut the manifest's schema lays out\n%s", got, want)
	}
	if n := pf.NumRows(); n != rows {
		f.Close()
		return nil, mismatch(path, "its metadata counts %d rows, the manifest %d", n, rows)
	}
	return &fileReader{path: path, f: f, l: l, pf: pf, rgs: pf.RowGroups(), buf: make([]parquet.Row, 128),
		dig: newDigester(l), total: pf.NumRows()}, nil
}

// openParquet opens a file nobody has vouched for: parquet-go is not
// hardened against hostile input, so a panic in it is a malformed file.
func openParquet(f *os.File, size int64) (pf *parquet.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			pf, err = nil, fmt.Errorf("parquet reader panic: %v", p)
		}
	}()
	return parquet.OpenFile(f, size, parquet.SkipBloomFilters(true))
}

// guard turns a panic of the Parquet reader into a mismatch.
func guard(path string, err *error) {
	if p := recover(); p != nil {
		*err = mismatch(path, "malformed Parquet file: reader panic: %v", p)
	}
}

// row returns the file's next row, or nil at its end.
func (r *fileReader) row() (_ parquet.Row, err error) {
	defer guard(r.path, &err)
	for r.next == r.have {
		if r.rr == nil {
			if len(r.rgs) == 0 {
				return nil, nil
			}
			r.rr, r.rgs = r.rgs[0].Rows(), r.rgs[1:]
		}
		n, err := r.rr.ReadRows(r.buf)
		r.have, r.next = n, 0
		if n == 0 && err == nil {
			// A reader that makes no progress would spin here forever.
			if r.stalls++; r.stalls > 3 {
				return nil, mismatch(r.path, "the Parquet reader returns no rows and no end")
			}
			continue
		}
		r.stalls = 0
		if err == io.EOF {
			r.rr.Close()
			r.rr = nil
		} else if err != nil {
			return nil, mismatch(r.path, "reading rows: %v", err)
		}
	}
	row := r.buf[r.next]
	r.next++
	if r.read++; r.read > r.total {
		return nil, mismatch(r.path, "the file yields more rows than the %d it declares", r.total)
	}
	return row, nil
}

// expect compares the file's next row with want, derived from the log.
func (r *fileReader) expect(want parquet.Row) error {
	got, err := r.row()
	if err != nil {
		return err
	}
	if got == nil {
		return &MismatchError{File: r.path, Row: r.rows, Key: string(want[0].ByteArray()),
			Reason: fmt.Sprintf("the file ends after %d rows; the change log derives more", r.rows)}
	}
	r.want = appendCanonical(r.want[:0], want)
	r.got = appendCanonical(r.got[:0], got)
	if !bytes.Equal(r.want, r.got) {
		e := &MismatchError{File: r.path, Row: r.rows, Key: string(want[0].ByteArray()), Reason: "the file's row differs from the one the change log derives"}
		for i := range want {
			if i >= len(got) || !bytes.Equal(appendCanonical(nil, want[i:i+1]), appendCanonical(nil, got[i:i+1])) {
				e.Column = r.l.cols[i].name
				if i < len(got) {
					e.Reason = fmt.Sprintf("file has %v, the change log derives %v", got[i], want[i])
				}
				break
			}
		}
		return e
	}
	r.dig.row(got)
	r.rows++
	return nil
}

// end checks the file has no rows left over.
func (r *fileReader) end() error {
	got, err := r.row()
	if err != nil {
		return err
	}
	if got != nil {
		return &MismatchError{File: r.path, Row: r.rows, Key: string(got[0].ByteArray()),
			Reason: fmt.Sprintf("the file has %d rows; the change log derives %d", r.total, r.rows)}
	}
	return nil
}

func (r *fileReader) close() {
	if r.rr != nil {
		r.rr.Close()
	}
	r.f.Close()
}
