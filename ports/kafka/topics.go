package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnsureTopics creates the topics that do not exist yet, with the given
// partition counts and the broker's default replication. Existing topics are
// left as they are.
func EnsureTopics(ctx context.Context, cl *kgo.Client, partitions map[string]int32) error {
	adm := kadm.NewClient(cl)
	for topic, n := range partitions {
		resp, err := adm.CreateTopic(ctx, n, -1, nil, topic)
		if err != nil {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
		if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic, resp.Err)
		}
	}
	return nil
}
