package runtime

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/meshlet/meshlet/contracts"
)

// The kinds of output port. A stream port is a Kafka topic of Avro
// events; a snapshot port writes Parquet snapshots (package snapshot) of a
// stream port on a schedule:
//
//	outputPorts:
//	  - name: products                 # the stream port, always first
//	    topic: inventory.products.v1
//	    schema: schemas/product.avsc
//	  - name: products-daily
//	    kind: snapshot
//	    of: products                   # the stream port the files hold
//	    every: 24h                     # Go duration, or days: 1d
//	    retain: 30                     # the newest 30 snapshots are kept
//	    url: s3://lake?region=eu-west-1&prefix=inventory/products/
//	    files: [table, history]        # the default
//
// Each snapshot is written under <url>/<name>/ (manifest.json last, so a
// directory with a manifest is whole), name being T, the snapshot's
// system time, as 20260501T120000.000000Z: names sort by time.
const (
	PortStream   = "stream"
	PortSnapshot = "snapshot"
)

// minSnapshotEvery bounds how often a port may be scheduled; the control
// command takes one at any moment.
const minSnapshotEvery = time.Minute

// SnapshotSchemes are the URL schemes a snapshot port can write to in this
// binary: gocloud.dev/blob drivers registered with its default URL mux.
// The runtime links file (fileblob) and s3 (s3blob, also for S3-compatible
// stores through ?endpoint=, e.g. MinIO or Google Cloud Storage's XML API
// with HMAC keys). A product binary that needs another store blank-imports
// its driver (gocloud.dev/blob/gcsblob, .../azureblob): they are left out
// of every binary by default because their client libraries are several
// times the size of the rest of Meshlet.
func SnapshotSchemes() []string { return blob.DefaultURLMux().BucketSchemes() }

// SnapshotEvery is a snapshot port's period.
func (p OutputPort) SnapshotEvery() (time.Duration, error) { return parseEvery(p.Every) }

// parseEvery reads a Go duration, or a whole number of days ("7d").
func parseEvery(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q; want a duration such as 30m, 1h or 1d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q; want a duration such as 30m, 1h or 1d", s)
	}
	return d, nil
}

// validateSnapshotPort checks outputPorts[i], a port of a kind other than
// stream.
func (m *Manifest) validateSnapshotPort(v *validator, i int, p OutputPort) {
	at := fmt.Sprintf("outputPorts[%d]", i)
	if p.Kind != PortSnapshot {
		v.fail(at+".kind", "is %q; want stream (a Kafka topic, the default) or snapshot (Parquet files on a schedule)", p.Kind)
		return
	}
	if i == 0 {
		v.fail(at+".kind", "is snapshot on the first port; list the stream port first and its snapshot ports after it")
	}
	if p.Name == "" {
		v.fail(at+".name", "is missing; name the port, e.g. %s-daily", cmpOr(p.Of, "products"))
	}
	var streams []string
	for j, q := range m.OutputPorts {
		if q.Kind != PortSnapshot {
			streams = append(streams, q.Name)
		}
		if j < i && q.Name == p.Name && p.Name != "" {
			v.fail(at+".name", "%q is also the name of outputPorts[%d]; port names are unique", p.Name, j)
		}
	}
	switch {
	case p.Of == "":
		v.fail(at+".of", "is missing; name the stream port whose records the snapshots hold: %s", strings.Join(streams, ", "))
	case !slices.Contains(streams, p.Of):
		v.fail(at+".of", "is %q; want the name of a stream port of this product: %s", p.Of, strings.Join(streams, ", "))
	}
	if p.Every == "" {
		v.fail(at+".every", "is missing; say how often to write a snapshot, e.g. every: 1h or every: 1d")
	} else if d, err := parseEvery(p.Every); err != nil {
		v.fail(at+".every", "is %v", err)
	} else if d < minSnapshotEvery {
		v.fail(at+".every", "is %s; snapshots are scheduled at most every %s (the control command `snapshot` takes one at any time)", d, minSnapshotEvery)
	}
	if p.Retain < 1 {
		v.fail(at+".retain", "is %d; say how many snapshots to keep, e.g. retain: 30 (older ones are deleted)", p.Retain)
	}
	if err := checkSnapshotURL(p.URL); err != nil {
		v.fail(at+".url", "%v", err)
	}
	seen := map[string]bool{}
	for k, f := range p.Files {
		if f != "table" && f != "history" {
			v.fail(fmt.Sprintf("%s.files[%d]", at, k), "is %q; want table (the table as of the snapshot) or history (every version, both periods)", f)
		} else if seen[f] {
			v.fail(fmt.Sprintf("%s.files[%d]", at, k), "is %s twice", f)
		}
		seen[f] = true
	}
	if len(p.Files) == 0 {
		v.fail(at+".files", "is empty; leave it out for both files, or name table, history or both")
	}
	for _, f := range []struct {
		name string
		set  bool
	}{{"topic", p.Topic != ""}, {"schema", p.Schema != ""}, {"subject", p.Subject != ""}, {"subjectNaming", p.SubjectNaming != ""},
		{"version", p.Version != ""}, {"contract", p.Contract != nil}, {"policy", p.Policy.DataSubject != "" || len(p.Policy.Actions) > 0}} {
		if f.set {
			v.fail(at+"."+f.name, "is set on a snapshot port; the files follow port %s's schema, contract and policy: set it there", cmpOr(p.Of, "of"))
		}
	}
}

// refuseSnapshotFields reports the snapshot fields set on a stream port.
func (m *Manifest) refuseSnapshotFields(v *validator, at string, p OutputPort) {
	for _, f := range []struct {
		name string
		set  bool
	}{{"of", p.Of != ""}, {"every", p.Every != ""}, {"retain", p.Retain != 0}, {"url", p.URL != ""}, {"files", p.Files != nil}} {
		if f.set {
			v.fail(at+"."+f.name, "is set on a stream port; only a port of kind: snapshot takes it")
		}
	}
}

// checkSnapshotURL admits a bucket URL a snapshot port can write to.
func checkSnapshotURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("is missing; say where to write, e.g. file:///var/lib/meshlet/snapshots or s3://bucket?region=eu-west-1&prefix=products/")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("is %q; want a URL such as file:///var/lib/meshlet/snapshots or s3://bucket?prefix=products/", raw)
	}
	if !blob.DefaultURLMux().ValidBucketScheme(u.Scheme) {
		return fmt.Errorf("is %q; this binary writes snapshots to %s URLs (another store needs its gocloud.dev/blob driver linked in)",
			raw, strings.Join(SnapshotSchemes(), ", "))
	}
	switch {
	case u.Scheme == "file" && (u.Host != "" || !path.IsAbs(u.Path)):
		return fmt.Errorf("is %q; a file URL names an absolute directory, with three slashes: file:///var/lib/meshlet/snapshots", raw)
	case u.Scheme != "file" && u.Path != "" && u.Path != "/":
		return fmt.Errorf("is %q; a bucket URL names the bucket only: put the folder in the prefix parameter, %s://%s?prefix=%s/",
			raw, u.Scheme, u.Host, strings.Trim(u.Path, "/"))
	case u.Query().Get("prefix") != "" && !strings.HasSuffix(u.Query().Get("prefix"), "/"):
		return fmt.Errorf("is %q; end the prefix with a slash (prefix=%s/), or snapshots are written beside it", raw, u.Query().Get("prefix"))
	}
	return nil
}

// splitSnapshotPorts moves the snapshot ports out of OutputPorts, which
// the rest of the runtime reads as the stream ports, and announces each
// one in its stream port's contract (ODCS servers).
func (m *Manifest) splitSnapshotPorts() {
	var streams []OutputPort
	for _, p := range m.OutputPorts {
		if p.Kind == PortSnapshot {
			m.SnapshotPorts = append(m.SnapshotPorts, p)
		} else {
			streams = append(streams, p)
		}
	}
	m.OutputPorts = streams
	for i := range m.OutputPorts {
		p := &m.OutputPorts[i]
		for _, s := range m.SnapshotPorts {
			if s.Of != p.Name {
				continue
			}
			if p.Contract == nil {
				p.Contract = &contracts.Spec{}
			}
			p.Contract.Servers = append(p.Contract.Servers, snapshotServer(s))
		}
	}
}

// snapshotServer describes a snapshot port as an ODCS server: local for a
// file URL, s3 for an S3 one, custom for any other.
func snapshotServer(p OutputPort) contracts.Server {
	s := contracts.Server{
		Server: p.Name,
		Format: "parquet",
		Description: fmt.Sprintf("Parquet snapshots of port %s (%s), one directory per snapshot named by its system time: "+
			"manifest.json (what it holds, the change-log checkpoints it is proven against, the topic offsets to continue from), "+
			"schema.avsc and %s.parquet.", p.Of, strings.Join(p.Files, " and "), strings.Join(p.Files, ".parquet, ")),
		CustomProperties: []contracts.CustomProperty{
			{Property: "snapshotOf", Value: p.Of},
			{Property: "snapshotEvery", Value: p.Every},
			{Property: "snapshotRetain", Value: p.Retain},
			{Property: "snapshotFiles", Value: strings.Join(p.Files, ",")},
		},
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return s // validated before; not reached
	}
	q := u.Query()
	switch u.Scheme {
	case "file":
		s.Type, s.Path = "local", strings.TrimSuffix(u.Path, "/")+"/"
	case "s3":
		s.Type, s.Location = "s3", "s3://"+u.Host+"/"+q.Get("prefix")
		if ep := q.Get("endpoint"); ep != "" {
			s.EndpointURL = ep
		}
	default:
		s.Type, s.Location = "custom", u.Scheme+"://"+u.Host+"/"+q.Get("prefix")
	}
	return s
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// MarshalJSON writes the manifest as product.yaml reads: the snapshot
// ports among the output ports, after the stream ports.
func (m Manifest) MarshalJSON() ([]byte, error) {
	type plain Manifest // without this method
	p := plain(m)
	p.OutputPorts = append(slices.Clone(m.OutputPorts), m.SnapshotPorts...)
	return json.Marshal(p)
}
