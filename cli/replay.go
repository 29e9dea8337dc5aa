package cli

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/hamba/avro/v2/ocf"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/ports/query"
	"github.com/meshlet/meshlet/schemas"
)

func init() {
	register(command{name: "replay", synopsis: "DIR --to jsonl|avro-ocf|kafka  replay the change log in system-time order", run: plain(cmdReplay)})
}

const replayUsage = `replay DIR --to jsonl|avro-ocf|kafka [--from T1] [--until T2] [flags]

Replays every entry recorded in [T1, T2) (default: all), across the
product's logs in system-time order, to one of:

  jsonl     one JSON object per entry (log, seq, times, op, key, fields,
            provenance, chain hash) to --out FILE or stdout;
  avro-ocf  an Avro object container file --out FILE holding the published
            events as they were published (one writer schema per file: use
            --schema-id when the log holds several);
  kafka     the topic --topic on --brokers, each event re-encoded with its
            schema registered (subject TOPIC-value) in --registry, keyed by
            the entity key, with meshlet.log, meshlet.seq and
            meshlet.system_time headers.

DIR is as for asof.`

type replayOptions struct {
	storeFlags
	to       string
	out      string
	from     timeFlag
	until    timeFlag
	brokers  string
	topic    string
	target   string
	schemaID int
	raw      bool
}

func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o replayOptions
	fs := newFlags("replay", replayUsage, stderr)
	fs.StringVar(&o.to, "to", "", "what to replay into: jsonl, avro-ocf or kafka (required)")
	fs.StringVar(&o.out, "out", "", "output file for jsonl (default stdout) and avro-ocf (required)")
	fs.Var(&o.from, "from", "system time `T1` to start at (inclusive; default the beginning)")
	fs.Var(&o.until, "until", "system time `T2` to stop before (default now)")
	fs.StringVar(&o.brokers, "brokers", "", "kafka: comma-separated seed brokers")
	fs.StringVar(&o.topic, "topic", "", "kafka: topic to produce to")
	fs.StringVar(&o.target, "target-registry", "", "kafka: registry to register the schemas in (default --registry)")
	fs.IntVar(&o.schemaID, "schema-id", 0, "replay only events of this writer schema id")
	fs.BoolVar(&o.raw, "raw", false, "jsonl: print payloads as base64 instead of decoding them")
	o.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, "replay", pos, "DIR"); err != nil {
		return err
	}
	dir := pos[0]
	switch o.to {
	case "jsonl":
	case "avro-ocf":
		if o.out == "" {
			return fmt.Errorf("--to avro-ocf needs --out FILE")
		}
	case "kafka":
		if o.target == "" {
			o.target = o.registry
		}
		if o.brokers == "" || o.topic == "" || o.target == "" {
			return fmt.Errorf("--to kafka needs --brokers, --topic and --registry (or --target-registry)")
		}
	default:
		fs.Usage()
		return fmt.Errorf("%w: --to must be jsonl, avro-ocf or kafka, not %q", errUsage, o.to)
	}
	st, err := o.open(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	dec, err := o.decoder(dir)
	if err != nil {
		return err
	}
	from := int64(0)
	if o.from.set {
		from = o.from.system()
	}
	until := o.until.system()
	keep := func(f *auditlog.Fact) bool { return o.schemaID == 0 || int(f.Prov.SchemaID) == o.schemaID }

	var n int
	switch o.to {
	case "jsonl":
		n, err = replayJSONL(ctx, st, dec, &o, from, until, keep, stdout)
	case "avro-ocf":
		n, err = replayOCF(ctx, st, dec, &o, from, until, keep)
	case "kafka":
		n, err = replayKafka(ctx, st, dec, &o, from, until, keep)
	}
	if err != nil {
		return err
	}
	if o.to != "jsonl" || o.out != "" {
		fmt.Fprintf(stdout, "replayed %d entries recorded in [%s, %s) to %s\n", n, query.FormatTime(from), describe(until), o.to)
	}
	return nil
}

type replayLine struct {
	Log        string         `json:"log"`
	Seq        uint64         `json:"seq"`
	SystemFrom string         `json:"_system_from"`
	ValidFrom  string         `json:"_valid_from"`
	ValidTo    *string        `json:"_valid_to"`
	Op         string         `json:"op"`
	Key        string         `json:"key"`
	SchemaID   uint32         `json:"schema_id"`
	Fields     map[string]any `json:"fields,omitempty"`
	Payload    []byte         `json:"payload,omitempty"`
	Source     sourceJSON     `json:"source"`
	Hash       string         `json:"hash"`
}

type sourceJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Position  string `json:"position,omitempty"`
}

func replayJSONL(ctx context.Context, st *auditlog.Store, dec *query.Decoder, o *replayOptions, from, until int64, keep func(*auditlog.Fact) bool, stdout io.Writer) (int, error) {
	w := stdout
	if o.out != "" && o.out != "-" {
		f, err := os.Create(o.out)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	n := 0
	err := st.Replay(from, until, func(f *auditlog.Fact) error {
		if !keep(f) {
			return nil
		}
		l := replayLine{Log: f.Log, Seq: f.Seq, SystemFrom: query.FormatTime(f.SystemTime), ValidFrom: query.FormatTime(f.ValidFrom),
			Op: query.OpName(f.Op), Key: string(f.Key), SchemaID: f.Prov.SchemaID, Hash: hex.EncodeToString(f.Hash[:]),
			Source: sourceJSON{f.Prov.Topic, f.Prov.Partition, f.Prov.Offset, f.Prov.SourcePosition}}
		if f.ValidTo != 0 {
			s := query.FormatTime(f.ValidTo)
			l.ValidTo = &s
		}
		if o.raw {
			l.Payload = f.Payload
		} else if len(f.Payload) > 0 {
			m, err := dec.Fields(ctx, f.Payload)
			if err != nil {
				return fmt.Errorf("log %s seq %d: %w (use --raw to replay undecoded payloads)", f.Log, f.Seq, err)
			}
			l.Fields = m
		}
		n++
		return enc.Encode(l)
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return n, err
}

func replayOCF(ctx context.Context, st *auditlog.Store, dec *query.Decoder, o *replayOptions, from, until int64, keep func(*auditlog.Fact) bool) (int, error) {
	file, err := os.Create(o.out)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	var (
		w      *ocf.Encoder
		fileID int
		n      int
	)
	err = st.Replay(from, until, func(f *auditlog.Fact) error {
		if !keep(f) {
			return nil
		}
		id, body, err := schemas.SplitWire(logWire(f.Payload))
		if err != nil {
			return fmt.Errorf("log %s seq %d: %w", f.Log, f.Seq, err)
		}
		if w == nil {
			text, err := dec.Published(ctx, id)
			if err != nil {
				return fmt.Errorf("log %s seq %d: %w", f.Log, f.Seq, err)
			}
			// The records are copied as the change log holds them (Write
			// takes encoded bodies), so nothing is re-encoded; the header
			// keeps the full published schema, logical types and docs.
			if w, err = ocf.NewEncoder(text, file, ocf.WithCodec(ocf.Deflate),
				ocf.WithSchemaMarshaler(ocf.FullSchemaMarshaler), ocf.WithBlockSize(256<<10)); err != nil {
				return fmt.Errorf("avro container for schema id %d: %w", id, err)
			}
			fileID = id
		}
		if id != fileID {
			return fmt.Errorf("log %s seq %d uses schema id %d, but %s holds schema id %d: an Avro container has one writer schema, replay each with --schema-id",
				f.Log, f.Seq, id, o.out, fileID)
		}
		n++
		_, err = w.Write(body)
		return err
	})
	if err != nil {
		os.Remove(o.out)
		return 0, err
	}
	if w == nil {
		os.Remove(o.out)
		return 0, fmt.Errorf("no entries in that range: nothing written to %s", o.out)
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return n, file.Close()
}

func replayKafka(ctx context.Context, st *auditlog.Store, dec *query.Decoder, o *replayOptions, from, until int64, keep func(*auditlog.Fact) bool) (int, error) {
	reg, err := schemas.NewRegistry([]string{o.target})
	if err != nil {
		return 0, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(o.brokers, ",")...), kgo.DefaultProduceTopic(o.topic),
		kgo.AllowAutoTopicCreation())
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var (
		ids   = map[int]int{} // writer schema id in the log -> id in the target registry
		mu    sync.Mutex
		first error
		n     int
	)
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
		}
	}
	err = st.Replay(from, until, func(f *auditlog.Fact) error {
		if !keep(f) {
			return nil
		}
		mu.Lock()
		ferr := first
		mu.Unlock()
		if ferr != nil {
			return ferr
		}
		id, _, err := schemas.SplitWire(logWire(f.Payload))
		if err != nil {
			return fmt.Errorf("log %s seq %d: %w", f.Log, f.Seq, err)
		}
		to, ok := ids[id]
		if !ok {
			if to, err = registerPublished(ctx, dec, reg, o.topic+"-value", id); err != nil {
				return fmt.Errorf("log %s seq %d: %w", f.Log, f.Seq, err)
			}
			ids[id] = to
		}
		value := append([]byte(nil), logWire(f.Payload)...)
		binary.BigEndian.PutUint32(value[1:5], uint32(to))
		r := &kgo.Record{Key: append([]byte(nil), f.Key...), Value: value, Headers: []kgo.RecordHeader{
			{Key: "meshlet.log", Value: []byte(f.Log)},
			{Key: "meshlet.seq", Value: []byte(strconv.FormatUint(f.Seq, 10))},
			{Key: "meshlet.system_time", Value: []byte(query.FormatTime(f.SystemTime))},
		}}
		cl.Produce(ctx, r, done)
		n++
		return nil
	})
	if ferr := cl.Flush(ctx); err == nil {
		err = ferr
	}
	if err == nil {
		err = first
	}
	return n, err
}

// registerPublished registers the writer schema of log id under subject in
// reg and returns its id there (schemas.ParsePublished recovers the row
// schema that Register derives the same published schema from).
func registerPublished(ctx context.Context, dec *query.Decoder, reg *schemas.Registry, subject string, id int) (int, error) {
	text, err := dec.Published(ctx, id)
	if err != nil {
		return 0, err
	}
	s, err := schemas.ParsePublished(fmt.Sprintf("schema id %d", id), text)
	if err != nil {
		return 0, err
	}
	to, err := reg.Register(ctx, subject, s, schemas.CompatBackward)
	if err != nil {
		return 0, fmt.Errorf("register schema id %d under %s: %w", id, subject, err)
	}
	return to, nil
}

// logWire is the Confluent wire-format record of a change-log payload. For a
// product with pii fields the payload is a sealed envelope around the row
// with those fields cleared (package governance): replays to files and topics carry
// that row, never the personal data.
func logWire(payload []byte) []byte {
	if _, wire, ok := governance.Split(payload); ok {
		return wire
	}
	return payload
}
