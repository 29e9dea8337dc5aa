package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/examples/inventory/products"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/schemas"
)

// What the crash and scale-out tests check once the children are gone:
// the committed output, the dead letters and the change logs against a
// model of the product run on the input alone, and every data directory's
// cache of a log against the changelog topic, byte for byte.

// expectation is what the committed output, the dead-letter topic and the
// change logs must hold, derived from the input alone and the reprocessings
// the product was asked for.
type expectation struct {
	keys    map[string][]string // output key -> versions, in order
	sizes   map[string]int      // key NUL version -> description length
	logs    map[int32][]int64   // input partition -> input offset of each log entry, in order
	dead    map[string]int      // marker -> times in the dead-letter topic
	origin  map[string]string   // marker -> partition/offset it came from
	outputs int
}

// expect models the product: each partition is consumed in offset order;
// a reprocessing consumes [from, until) again right after until was
// reached, publishing every event of the range once more (the source's
// re-sends included: dedup is bypassed there) and dead-lettering its
// malformed records again; outside reprocessings a re-send is dropped.
func (w *crashWorld) expect() expectation {
	w.t.Helper()
	x := expectation{keys: map[string][]string{}, sizes: map[string]int{}, logs: map[int32][]int64{},
		dead: map[string]int{}, origin: map[string]string{}}
	w.mu.Lock()
	defer w.mu.Unlock()
	for p, evs := range w.placed {
		type span struct {
			from, to int64
			again    bool
		}
		var spans []span
		var at int64
		for _, r := range w.reprocessed {
			if r.partition == p {
				spans = append(spans, span{at, r.until, false}, span{r.from, r.until, true})
				at = r.until
			}
		}
		spans = append(spans, span{at, int64(len(evs)), false})
		for _, s := range spans {
			for off := s.from; off < s.to; off++ {
				e := evs[off]
				switch {
				case e.kind == eventValid || e.kind == eventDuplicate && s.again:
					x.keys[e.key] = append(x.keys[e.key], e.name)
					x.sizes[e.key+"\x00"+e.name] = e.size
					x.logs[p] = append(x.logs[p], off)
					x.outputs++
				case e.kind == eventMalformed:
					x.dead[e.marker]++
					x.origin[e.marker] = fmt.Sprintf("%d/%d", p, off)
				case e.kind == eventDuplicate:
				default:
					w.t.Fatalf("input %s/%d@%d: the feeder never placed a record there", w.in, p, off)
				}
			}
		}
	}
	return x
}

// check verifies the crash rule on what the children left behind: the
// output, the dead letters, the change logs in the given data directories
// and the changelog topic. Each directory's cache of a log must be the
// topic's log or a prefix of it, byte for byte, and some directory must
// hold each log whole.
func (w *crashWorld) check(dirs ...string) {
	t := w.t
	t.Helper()
	if len(dirs) == 0 {
		dirs = []string{w.dataDir}
	}
	x := w.expect()
	reg, err := schemas.NewRegistry([]string{w.registry})
	if err != nil {
		t.Fatal(err)
	}
	out := w.readAll(w.out)
	got := map[string][]string{}
	published := map[string]int{}
	for _, r := range out {
		var row products.Product
		if _, _, err := reg.Decode(context.Background(), r.Value, &row); err != nil {
			t.Fatalf("output %d@%d: %v", r.Partition, r.Offset, err)
		}
		key := string(r.Key)
		got[key] = append(got[key], row.Name)
		if want, n := x.sizes[key+"\x00"+row.Name], len(deref(row.Description)); want != n {
			t.Errorf("output %d@%d, key %s %s: description of %d bytes, want %d", r.Partition, r.Offset, key, row.Name, n, want)
		}
		published[key+"\x00"+string(r.Value)]++
	}
	if len(out) != x.outputs {
		t.Errorf("output holds %d records; want exactly %d (%d valid events, %d re-sent by the source, %d reprocessings)",
			len(out), x.outputs, w.valid, w.dups, len(w.reprocessed))
	}
	for key, want := range x.keys {
		if strings.Join(got[key], ",") != strings.Join(want, ",") {
			t.Errorf("key %s: output versions %v, want %v (each once, in order)", key, got[key], want)
			break
		}
	}

	dead := w.readAll(w.dlq)
	seen := map[string]int{}
	markerRE := regexp.MustCompile(`broken-\d+`)
	for _, r := range dead {
		m := markerRE.Find(r.Value)
		if m == nil || kafka.Header(r, ports.HeaderErrorClass) != "malformed" {
			t.Errorf("unexpected dead letter %q headers %v", r.Value, r.Headers)
			continue
		}
		origin := kafka.Header(r, ports.HeaderOriginPartition) + "/" + kafka.Header(r, ports.HeaderOriginOffset)
		if want := x.origin[string(m)]; origin != want {
			t.Errorf("dead letter %s names origin %s, want %s", m, origin, want)
		}
		seen[string(m)]++
	}
	for marker, n := range x.dead {
		if seen[marker] != n {
			t.Errorf("malformed event %s is in the dead-letter topic %d times, want %d", marker, seen[marker], n)
		}
	}
	if want := deadLetters(x); len(dead) != want {
		t.Errorf("dead-letter topic holds %d records, want %d (%d malformed events, some reprocessed)", len(dead), want, w.malformed)
	}

	topic := w.topicLogs()
	entries := 0
	for name, recs := range topic {
		p := logPartition(t, name)
		offsets := make([]int64, 0, len(recs))
		for i, rec := range recs {
			var e auditlog.Entry
			if err := auditlog.ParseRecord(rec, &e); err != nil {
				t.Fatalf("changelog topic %s, log %s entry %d: %v", w.clogName, name, i+1, err)
			}
			if e.Seq != uint64(i+1) {
				t.Fatalf("changelog topic %s, log %s: entry %d has seq %d", w.clogName, name, i+1, e.Seq)
			}
			k := string(e.Key) + "\x00" + string(e.Payload)
			if published[k] == 0 {
				t.Fatalf("log %s seq %d (input offset %d) is not in the committed output", name, e.Seq, e.Prov.Offset)
			}
			published[k]--
			offsets = append(offsets, e.Prov.Offset)
			entries++
		}
		if want := x.logs[p]; !slices.Equal(offsets, want) {
			t.Errorf("log %s holds the events of input offsets %s; want %s", name, brief(offsets), brief(want))
		}
	}
	if entries != len(out) {
		t.Errorf("the change logs hold %d entries, the output %d records: they must match record for record", entries, len(out))
	}
	w.checkCaches(topic, dirs)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// deadLetters is how many dead letters x expects.
func deadLetters(x expectation) int {
	n := 0
	for _, c := range x.dead {
		n += c
	}
	return n
}

func logPartition(t *testing.T, name string) int32 {
	i := strings.LastIndexByte(name, '-')
	p, err := strconv.Atoi(name[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("log name %q does not end in -PARTITION", name)
	}
	return int32(p)
}

// brief shows a long list of offsets by its length, ends and first
// difference from a run of consecutive numbers.
func brief(offs []int64) string {
	if len(offs) <= 12 {
		return fmt.Sprint(offs)
	}
	return fmt.Sprintf("%d offsets %v ... %v", len(offs), offs[:6], offs[len(offs)-6:])
}

// topicLogs reads the changelog topic (read_committed, as a restore does)
// and returns each log's entry records in order.
func (w *crashWorld) topicLogs() map[string][][]byte {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := map[string][][]byte{}
	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(w.brokers, ",")...)}
	for p := range int32(3) {
		_, err := kafka.ReadPartition(ctx, opts, w.clogName, p, 0, func(r *kgo.Record) error {
			name := string(r.Key)
			return auditlog.EachInChunk(r.Value, func(rec []byte) error {
				logs[name] = append(logs[name], bytes.Clone(rec))
				return nil
			})
		})
		if err != nil {
			w.t.Fatalf("read changelog topic %s/%d: %v", w.clogName, p, err)
		}
	}
	return logs
}

// cacheRecords reads a log directory's segments byte by byte, without the
// auditlog package, and returns each frame's body and hash: exactly what
// the changelog topic carries per entry.
func cacheRecords(dir string) ([][]byte, error) {
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		return nil, err
	}
	sort.Strings(segs)
	var recs [][]byte
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			return nil, err
		}
		const header = 52
		if len(b) < header {
			return nil, fmt.Errorf("%s: %d bytes, shorter than a segment header", seg, len(b))
		}
		for off := header; off < len(b); {
			if len(b)-off < 8 {
				return nil, fmt.Errorf("%s offset %d: %d bytes left, less than a frame header", seg, off, len(b)-off)
			}
			n := int(binary.BigEndian.Uint32(b[off:]))
			if n > len(b)-off-8 {
				return nil, fmt.Errorf("%s offset %d: frame of %d bytes runs past the end", seg, off, n)
			}
			recs = append(recs, b[off+8:off+8+n])
			off += 8 + n
		}
	}
	return recs, nil
}

// checkCaches compares every log cache in dirs with the topic: each is the
// topic's log or a prefix of it, byte for byte, and each log is whole in
// at least one directory. Logs set aside (.diverged-*) are not caches.
func (w *crashWorld) checkCaches(topic map[string][][]byte, dirs []string) {
	t := w.t
	t.Helper()
	whole := map[string]bool{}
	for _, dir := range dirs {
		logDirs, _ := filepath.Glob(filepath.Join(dir, "changelog", "*"))
		for _, ld := range logDirs {
			name := filepath.Base(ld)
			if st, err := os.Stat(ld); err != nil || !st.IsDir() || strings.Contains(name, ".diverged-") {
				continue
			}
			cache, err := cacheRecords(ld)
			if err != nil {
				t.Errorf("cache %s: %v", ld, err)
				continue
			}
			want := topic[name]
			if len(cache) > len(want) {
				t.Errorf("cache %s holds %d entries, the changelog topic %d", ld, len(cache), len(want))
				continue
			}
			for i := range cache {
				if !bytes.Equal(cache[i], want[i]) {
					t.Errorf("cache %s entry %d differs from the changelog topic's", ld, i+1)
					break
				}
			}
			if len(cache) == len(want) {
				whole[name] = true
			}
		}
	}
	for name, recs := range topic {
		if !whole[name] {
			t.Errorf("no data directory holds log %s whole (%d entries in the changelog topic)", name, len(recs))
		}
	}
	for _, dir := range dirs {
		if _, err := auditlog.VerifyTree(filepath.Join(dir, "changelog")); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("audit verify %s: %v", dir, err)
		}
	}
}
