package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/mod/sumdb/note"

	"github.com/meshlet/meshlet/auditlog"
)

// VerifierKey is the key, in the checkpoints topic, of the record holding
// the product's checkpoint verifier key (auditlog.VerifierFile's text).
const VerifierKey = "meshlet.verifier"

// CheckpointRecord carries a log's signed checkpoint note.
func CheckpointRecord(topic string, p int32, log string, size uint64, noteText []byte) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: p, Key: []byte(log), Value: noteText,
		Headers: []kgo.RecordHeader{{Key: HeaderCheckpointSize, Value: strconv.AppendUint(nil, size, 10)}}}
}

// ChangelogReport is what VerifyChangelog found of one log.
type ChangelogReport struct {
	Log        string
	Partition  int32 // of the changelog topic
	Entries    uint64
	Head       [32]byte
	Checkpoint uint64 // the size of the checkpoint it was checked against; 0: none found
	Err        error
}

// VerifyChangelog checks every change log of product straight from its
// changelog topic, as auditlog.Verify checks segments: each log's records
// in order, their chain, and the newest signed checkpoint of each log in
// the checkpoints topic. v checks the signatures; nil takes the verifier
// keys published in the checkpoints topic (one per replica disk), which
// shows damage and clumsy tampering but not a replaced key (give one
// obtained independently).
// Every log gets a report; the error joins the failures.
func VerifyChangelog(ctx context.Context, opts []kgo.Opt, product string, v note.Verifier) ([]ChangelogReport, error) {
	topic, cpTopic := ChangelogTopic(product), CheckpointTopic(product)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, topic, cpTopic)
	cl.Close()
	if err != nil {
		return nil, fmt.Errorf("list %s and %s: %w", topic, cpTopic, err)
	}
	d, ok := details[topic]
	if !ok || d.Err != nil {
		return nil, fmt.Errorf("product %s has no changelog topic %s on these brokers (%v)", product, topic, d.Err)
	}

	newest := map[string][]byte{} // log -> its largest checkpoint note
	sizes := map[string]uint64{}
	var published []note.Verifier // in the order published
	if cd, ok := details[cpTopic]; ok && cd.Err == nil {
		for _, p := range cd.Partitions.Numbers() {
			_, err := ReadPartition(ctx, opts, cpTopic, p, 0, func(r *kgo.Record) error {
				if string(r.Key) == VerifierKey {
					pv, err := note.NewVerifier(string(r.Value))
					if err != nil {
						return fmt.Errorf("%s/%d@%d: verifier key: %w", cpTopic, p, r.Offset, err)
					}
					published = append(published, pv)
					return nil
				}
				size, err := strconv.ParseUint(Header(r, HeaderCheckpointSize), 10, 64)
				if err != nil {
					return fmt.Errorf("%s/%d@%d: checkpoint without a size header", cpTopic, p, r.Offset)
				}
				if size >= sizes[string(r.Key)] {
					sizes[string(r.Key)], newest[string(r.Key)] = size, append([]byte(nil), r.Value...)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	// Each replica signs with the key on its own disk and publishes it, so
	// with separate disks (or a disk replaced) there are several: a log's
	// newest checkpoint is checked with the published key that signed it.
	keyFor := func(log string) note.Verifier {
		if v != nil || len(published) == 0 {
			return v
		}
		if n := newest[log]; n != nil {
			for i := len(published) - 1; i >= 0; i-- {
				if _, err := auditlog.OpenCheckpoint(n, published[i]); err == nil {
					return published[i]
				}
			}
		}
		return published[len(published)-1]
	}

	var reports []ChangelogReport
	var errs []error
	for _, p := range d.Partitions.Numbers() {
		verifiers := map[string]*auditlog.StreamVerifier{}
		var order []string
		_, err := ReadPartition(ctx, opts, topic, p, 0, func(r *kgo.Record) error {
			log := string(r.Key)
			s, ok := verifiers[log]
			if !ok {
				var notes [][]byte
				if n := newest[log]; n != nil {
					notes = append(notes, n)
				}
				var err error
				if s, err = auditlog.NewStreamVerifier(log, notes, keyFor(log)); err != nil {
					return fmt.Errorf("log %s: %w", log, err)
				}
				verifiers[log] = s
				order = append(order, log)
			}
			// A finding is kept by the verifier and reported by Finish.
			at := 0
			if err := auditlog.EachInChunk(r.Value, func(entry []byte) error {
				at++
				return s.Add(fmt.Sprintf("%s/%d@%d#%d", topic, p, r.Offset, at), entry)
			}); err != nil {
				s.Add(fmt.Sprintf("%s/%d@%d", topic, p, r.Offset), nil)
			}
			return nil
		})
		if err != nil {
			return reports, fmt.Errorf("read %s/%d: %w", topic, p, err)
		}
		for _, log := range order {
			rep, err := verifiers[log].Finish()
			cr := ChangelogReport{Log: log, Partition: p, Entries: rep.Entries, Head: rep.Head, Err: err}
			if len(rep.Checkpoints) > 0 {
				cr.Checkpoint = rep.Checkpoints[len(rep.Checkpoints)-1].Size
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("log %s: %w", log, err))
			}
			reports = append(reports, cr)
			delete(newest, log)
		}
	}
	for log := range newest {
		err := &auditlog.CorruptError{Dir: log, Reason: fmt.Sprintf("a checkpoint of %d entries is published for it, but %s holds none of its records: the log was removed", sizes[log], topic)}
		reports = append(reports, ChangelogReport{Log: log, Partition: -1, Checkpoint: sizes[log], Err: err})
		errs = append(errs, fmt.Errorf("log %s: %w", log, err))
	}
	slices.SortFunc(reports, func(a, b ChangelogReport) int {
		if a.Log < b.Log {
			return -1
		}
		if a.Log > b.Log {
			return 1
		}
		return 0
	})
	return reports, errors.Join(errs...)
}
