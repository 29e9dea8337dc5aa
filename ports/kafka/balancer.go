package kafka

import (
	"cmp"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// StandbyProtocol is the group protocol of StandbyBalancer.
const StandbyProtocol = "meshlet-standby-v1"

// StandbyBalancer assigns input partitions the way cooperative-sticky does
// (each member keeps what it owns while the counts stay balanced, moves go
// through a revocation round), with one preference added: a partition that
// has no owner goes to a member holding a caught-up copy of its change log,
// so a failover reads only what the changelog topic gained since, not the
// whole log. warm reports, at each join, the partitions whose copies this
// member has caught up; it may be nil.
//
// The warm set travels in the member's join metadata (the consumer
// protocol's user data, encoded as a consumer assignment). A member that
// sends none, or one that does not parse, is simply not preferred.
func StandbyBalancer(warm func() map[string][]int32) kgo.GroupBalancer {
	return &standbyBalancer{warm: warm}
}

type standbyBalancer struct {
	warm func() map[string][]int32
}

func (*standbyBalancer) ProtocolName() string { return StandbyProtocol }
func (*standbyBalancer) IsCooperative() bool  { return true }

func (s *standbyBalancer) JoinGroupMetadata(interests []string, current map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = interests
	meta.Generation = generation
	for _, topic := range sortedTopics(current) {
		owned := kmsg.NewConsumerMemberMetadataOwnedPartition()
		owned.Topic = topic
		owned.Partitions = current[topic]
		meta.OwnedPartitions = append(meta.OwnedPartitions, owned)
	}
	if s.warm != nil {
		warm := s.warm()
		var enc kmsg.ConsumerMemberAssignment
		for _, topic := range sortedTopics(warm) {
			t := kmsg.NewConsumerMemberAssignmentTopic()
			t.Topic = topic
			t.Partitions = slices.Sorted(slices.Values(warm[topic]))
			enc.Topics = append(enc.Topics, t)
		}
		meta.UserData = enc.AppendTo(nil)
	}
	return meta.AppendTo(nil)
}

func (*standbyBalancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (s *standbyBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	b, err := kgo.NewConsumerBalancer(s, members)
	if err != nil {
		return nil, nil, err
	}
	return b, b.MemberTopics(), nil
}

// Balance is the plan: see planStandby.
func (s *standbyBalancer) Balance(b *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	var members []standbyMember
	b.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		sm := standbyMember{id: m.MemberID, topics: map[string]bool{}, owned: map[tp]bool{}, warm: map[tp]bool{}}
		for _, t := range meta.Topics {
			sm.topics[t] = true
		}
		for _, o := range meta.OwnedPartitions {
			for _, p := range o.Partitions {
				sm.owned[tp{o.Topic, p}] = true
			}
		}
		var warm kmsg.ConsumerMemberAssignment
		if len(meta.UserData) > 0 && warm.ReadFrom(meta.UserData) == nil {
			for _, t := range warm.Topics {
				for _, p := range t.Partitions {
					sm.warm[tp{t.Topic, p}] = true
				}
			}
		}
		members = append(members, sm)
	})
	plan := b.NewPlan()
	byID := map[string]*kmsg.JoinGroupResponseMember{}
	for _, m := range b.Members() {
		byID[m.MemberID] = &m
	}
	for id, parts := range planStandby(members, topics) {
		for _, p := range parts {
			plan.AddPartition(byID[id], p.topic, p.partition)
		}
	}
	plan.AdjustCooperative(b)
	return plan
}

// tp is one topic partition.
type tp struct {
	topic     string
	partition int32
}

// standbyMember is what the plan knows of one member.
type standbyMember struct {
	id     string
	topics map[string]bool // subscribed
	owned  map[tp]bool     // claimed as owned in its join
	warm   map[tp]bool     // caught-up change log copies
}

// planStandby balances the partitions of topics among members, which come
// sorted as the group gives them. With P partitions among M members each
// member gets P/M, and P%M of them one more. In order:
//  1. a member keeps what it owns, up to its share (sorted, so the same
//     partitions are kept on every balance);
//  2. a partition nobody kept goes to the least loaded member under its
//     share that holds it warm;
//  3. what is left goes to the least loaded member under its share.
//
// A partition is only given to a member subscribed to its topic; members
// that subscribe to different topics are balanced as well as the
// subscriptions allow.
func planStandby(members []standbyMember, topics map[string]int32) map[string][]tp {
	plan := make(map[string][]tp, len(members))
	if len(members) == 0 {
		return plan
	}
	var all []tp
	for _, t := range sortedTopics(topics) {
		for p := int32(0); p < topics[t]; p++ {
			all = append(all, tp{t, p})
		}
	}
	share, extra := len(all)/len(members), len(all)%len(members)
	count := make([]int, len(members))
	// fits reports whether member i may take one more partition; taking
	// the share's extra one uses up one of the P%M.
	fits := func(i int) bool { return count[i] < share || (count[i] == share && extra > 0) }
	give := func(i int, p tp) {
		if count[i] == share {
			extra--
		}
		count[i]++
		plan[members[i].id] = append(plan[members[i].id], p)
	}
	taken := map[tp]bool{}
	for i, m := range members {
		owned := make([]tp, 0, len(m.owned))
		for p := range m.owned {
			owned = append(owned, p)
		}
		slices.SortFunc(owned, compareTP)
		for _, p := range owned {
			if _, ok := topics[p.topic]; !ok || p.partition >= topics[p.topic] || !m.topics[p.topic] || taken[p] || !fits(i) {
				continue
			}
			taken[p] = true
			give(i, p)
		}
	}
	// least is the least loaded member that may take p and satisfies ok.
	least := func(p tp, ok func(standbyMember) bool) int {
		best := -1
		for i, m := range members {
			if m.topics[p.topic] && fits(i) && ok(m) && (best < 0 || count[i] < count[best]) {
				best = i
			}
		}
		return best
	}
	var rest []tp
	for _, p := range all {
		if taken[p] {
			continue
		}
		if i := least(p, func(m standbyMember) bool { return m.warm[p] }); i >= 0 {
			taken[p] = true
			give(i, p)
			continue
		}
		rest = append(rest, p)
	}
	for _, p := range rest {
		i := least(p, func(standbyMember) bool { return true })
		if i < 0 {
			// Subscriptions differ and every subscriber is full: balance
			// by subscription alone rather than leave p unassigned.
			for j, m := range members {
				if m.topics[p.topic] && (i < 0 || count[j] < count[i]) {
					i = j
				}
			}
			if i < 0 {
				continue // nobody reads the topic
			}
			count[i]++
			plan[members[i].id] = append(plan[members[i].id], p)
			continue
		}
		give(i, p)
	}
	return plan
}

func compareTP(a, b tp) int {
	return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
}

func sortedTopics[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for t := range m {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
