package runtime_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/runtime"
)

// noise is n bytes that do not compress much: a broker measures a record
// batch after compression, and the test means its events to be large there too.
func noise(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	rng := rand.New(rand.NewPCG(uint64(n), 13))
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// bigEvent is a valid insert of product id whose description is n bytes.
func bigEvent(topic string, id, n int) *kgo.Record {
	v := fmt.Sprintf(`{"before":null,"after":{"id":%d,"name":"big","description":"%s","weight":2},`+
		`"source":{"connector":"postgresql","schema":"inventory","table":"products","ts_ms":1700000000000,"lsn":%d,"txId":%d},"op":"c"}`,
		id, noise(n), 90_000_000+id, 90_000+id)
	return &kgo.Record{Topic: topic, Key: []byte(`{"id":` + strconv.Itoa(id) + `}`), Value: []byte(v)}
}

// bigMalformed is n bytes that are no Debezium change (a cut-off one).
func bigMalformed(topic string, id, n int) *kgo.Record {
	head := `{"before":null,"after":{"id":` + strconv.Itoa(id) + `,"name":"`
	return &kgo.Record{Topic: topic, Key: []byte(`{"id":` + strconv.Itoa(id) + `}`), Value: []byte(head + noise(n-len(head)))}
}

// A valid 5 MB event and a 2 MB malformed one, among ordinary events: the
// output and dead-letter topics hold exactly what the counters say, and the
// log entry of the big event either reads back through the query port or
// was never appended. Topics at the broker's default limit (1 MiB) make
// both dead letters, reduced to their headers and a digest; topics that
// take 8 MiB publish the big event and keep the malformed one whole.
func TestLargeEvents(t *testing.T) {
	const bigID, badID, bigBytes, badBytes = 501, 502, 5_000_000, 2_000_000
	for _, tc := range []struct {
		name     string
		topicMax int // max.message.bytes of the output and dead-letter topics; 0: the broker's default
		opts     []runtime.Option
	}{
		{name: "topics at the broker default"},
		{name: "topics at the broker default, at least once", opts: []runtime.Option{runtime.WithDelivery(runtime.AtLeastOnce)}},
		{name: "topics that take 8 MiB", topicMax: 8 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := stackConfig{inputMax: 16 << 20, input: map[string]string{"max.message.bytes": strconv.Itoa(16 << 20)}}
			if tc.topicMax > 0 {
				cfg.output = map[string]string{"max.message.bytes": strconv.Itoa(tc.topicMax)}
				cfg.deadLetter = cfg.output
			}
			s := startStackWith(t, cfg)
			m := s.product.Manifest
			in := m.InputPorts[0].Topic
			small := s.produce(genEvents(in, 1, 20))
			big := s.produce([]*kgo.Record{bigEvent(in, bigID, bigBytes)})[0]
			bad := s.produce([]*kgo.Record{bigMalformed(in, badID, badBytes)})[0]
			after := s.produce(genEvents(in, 21, 20))

			opts := append([]runtime.Option{runtime.ManagementAddr("127.0.0.1:0"), runtime.Tokens(testTokens(t))}, tc.opts...)
			r, stop := s.runWith(s.dataDir, opts...)
			s.waitEvents(int64(len(small) + 2 + len(after)))

			bigPublished := tc.topicMax > 0
			base := "http://" + r.HTTPAddr().String() + "/v1/entities/"
			var cur struct {
				Found bool `json:"found"`
				Entry struct {
					Fields map[string]any `json:"fields"`
				} `json:"entry"`
			}
			code := getJSON(t, base+strconv.Itoa(bigID), &cur)
			var hist struct {
				Versions []map[string]any `json:"versions"`
			}
			hcode := getJSON(t, base+strconv.Itoa(bigID)+"/history", &hist)
			if bigPublished {
				if d, _ := cur.Entry.Fields["description"].(string); code != 200 || len(d) != bigBytes {
					t.Errorf("entity %d: %d, description of %d bytes; want 200 and %d bytes", bigID, code, len(d), bigBytes)
				}
				if hcode != 200 || len(hist.Versions) != 1 {
					t.Errorf("history of %d: %d, %d versions; want 200 and 1", bigID, hcode, len(hist.Versions))
				}
			} else if code != 404 || cur.Found || hcode != 404 || len(hist.Versions) != 0 {
				t.Errorf("entity %d was never appended, yet: entity %d (found %v), history %d with %d versions", bigID, code, cur.Found, hcode, len(hist.Versions))
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			published, dead := append(small, after...), []*kgo.Record{bad}
			if bigPublished {
				published = append(published, big)
			} else {
				dead = append(dead, big)
			}
			s.ledger([]*runtime.Runner{r}, s.dataDir, published, dead).check(t)
			if tc.opts == nil {
				// The changelog topic holds the same log, and a replica
				// with an empty disk restores it, big entry and all.
				want := localLogs(t, s.dataDir)
				sameLogs(t, "changelog topic", s.topicLogs(), want)
				entries := 0
				for _, recs := range want {
					entries += len(recs)
				}
				empty := t.TempDir()
				r, stop := s.runWith(empty)
				waitFor(t, func() bool {
					return metricSum(t, r.Metrics(), "meshlet_changelog_restored_entries_total") >= float64(entries)
				})
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				sameLogs(t, "restored from the changelog topic", localLogs(t, empty), want)
			}

			// Each dead letter says why and where from; one that does not fit
			// its topic keeps its headers and the digest of its value.
			for _, d := range s.readTopic(m.DeadLetter.Topic, 1) {
				var want *kgo.Record
				class := ports.ClassMalformed.String()
				switch kafka.Header(d, ports.HeaderOriginOffset) {
				case strconv.FormatInt(bad.Offset, 10):
					want = bad
				case strconv.FormatInt(big.Offset, 10):
					want, class = big, ports.ClassTooLarge.String()
				}
				if want == nil || kafka.Header(d, ports.HeaderOriginPartition) != strconv.Itoa(int(want.Partition)) {
					t.Errorf("dead letter from %s@%s: no such bad event", kafka.Header(d, ports.HeaderOriginPartition), kafka.Header(d, ports.HeaderOriginOffset))
					continue
				}
				if got := kafka.Header(d, ports.HeaderErrorClass); got != class || kafka.Header(d, ports.HeaderErrorMessage) == "" {
					t.Errorf("dead letter of offset %d: class %q (message %q), want %q", want.Offset, got, kafka.Header(d, ports.HeaderErrorMessage), class)
				}
				sum := sha256.Sum256(want.Value)
				switch {
				case tc.topicMax > 0:
					if string(d.Value) != string(want.Value) {
						t.Errorf("dead letter of offset %d: %d bytes, want the %d of the event", want.Offset, len(d.Value), len(want.Value))
					}
				case len(d.Value) != 0 || kafka.Header(d, ports.HeaderValueDigest) != hex.EncodeToString(sum[:]) ||
					kafka.Header(d, ports.HeaderValueBytes) != strconv.Itoa(len(want.Value)):
					t.Errorf("dead letter of offset %d: value of %d bytes, digest %q, size %q; want none, %x, %d", want.Offset, len(d.Value),
						kafka.Header(d, ports.HeaderValueDigest), kafka.Header(d, ports.HeaderValueBytes), sum, len(want.Value))
				}
			}
		})
	}
}

// A topic whose limit is lowered while the product runs refuses a record
// the product still took for small enough: the batch aborts, the limits
// are read again, and the batch consumed again sends the big event to the
// dead-letter topic and commits the rest.
func TestTopicLimitLoweredWhileRunning(t *testing.T) {
	const bigID, lowered = 901, 200_000
	s := startStackWith(t, stackConfig{inputMax: 16 << 20, input: map[string]string{"max.message.bytes": strconv.Itoa(16 << 20)}})
	m := s.product.Manifest
	in := m.InputPorts[0].Topic
	first := s.produce(genEvents(in, 1, 10))
	r, stop := s.runWith(s.dataDir)
	s.waitEvents(int64(len(first)))

	adm := kadm.NewClient(s.client)
	v := strconv.Itoa(lowered)
	resp, err := adm.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Name: "max.message.bytes", Value: &v}}, m.OutputPorts[0].Topic)
	if err == nil {
		_, err = resp.On(m.OutputPorts[0].Topic, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	big := s.produce([]*kgo.Record{bigEvent(in, bigID, 500_000)})[0]
	after := s.produce(genEvents(in, 11, 10))
	s.waitEvents(int64(len(first) + 1 + len(after)))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if r.Stats().Aborted.Load() == 0 {
		t.Error("no batch aborted: the broker never refused the big record, so the test lowered nothing")
	}
	s.ledger([]*runtime.Runner{r}, s.dataDir, append(first, after...), []*kgo.Record{big}).check(t)
	for _, d := range s.readTopic(m.DeadLetter.Topic, 1) {
		if got := kafka.Header(d, ports.HeaderErrorClass); got != ports.ClassTooLarge.String() || !strings.Contains(kafka.Header(d, ports.HeaderErrorMessage), v) {
			t.Errorf("dead letter: class %q, message %q; want too-large naming the limit %s", got, kafka.Header(d, ports.HeaderErrorMessage), v)
		}
	}
}
