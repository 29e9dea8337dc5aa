package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// defaultPartitions is the partition count of topics created while no
// input topic exists to take it from.
const defaultPartitions = 3

// createTopics creates the output and dead-letter topics that do not exist
// yet, with as many partitions as the largest input topic (so an output
// partition can follow its input partition), and reports the input topics
// that are missing: the product waits for them, since a CDC connector
// creates its topics when it first captures.
func (r *Runner) createTopics(ctx context.Context) error {
	adm := kadm.NewClient(r.sess.Client())
	m := r.product.Manifest
	var inputs, outputs []string
	for _, in := range m.InputPorts {
		inputs = append(inputs, in.Topic)
	}
	for _, out := range m.OutputPorts {
		outputs = append(outputs, out.Topic)
	}
	outputs = append(outputs, m.DeadLetter.Topic)
	details, err := adm.ListTopics(ctx, append(inputs, outputs...)...)
	if err != nil {
		return fmt.Errorf("list topics on %v: %w", r.cfg.brokers, err)
	}
	partitions := int32(0)
	for _, t := range inputs {
		d, ok := details[t]
		if !ok || d.Err != nil {
			r.log.Warn("input topic does not exist yet; waiting for it (the CDC connector creates it when it first captures)", "topic", t)
			continue
		}
		partitions = max(partitions, int32(len(d.Partitions)))
	}
	if partitions == 0 {
		partitions = defaultPartitions
	}
	for _, t := range outputs {
		if d, ok := details[t]; ok && d.Err == nil {
			continue
		}
		resp, err := adm.CreateTopic(ctx, partitions, -1, nil, t)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s (%d partitions): %w (create it yourself, or give the product's principal CREATE on it)", t, partitions, err)
		}
		r.log.Info("created topic", "topic", t, "partitions", partitions)
	}
	return nil
}
