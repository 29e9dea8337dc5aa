package kafka

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func member(id string, owned, warm []int32) standbyMember {
	m := standbyMember{id: id, topics: map[string]bool{"in": true}, owned: map[tp]bool{}, warm: map[tp]bool{}}
	for _, p := range owned {
		m.owned[tp{"in", p}] = true
	}
	for _, p := range warm {
		m.warm[tp{"in", p}] = true
	}
	return m
}

// The failover the balancer is for: c has gone, its partition 2 goes to
// the survivor that holds 2's log warm, whichever it is.
func TestPlanStandbyPrefersTheWarmCopy(t *testing.T) {
	for _, warmOn := range []string{"a", "b"} {
		a, b := member("a", []int32{0}, nil), member("b", []int32{1}, nil)
		if warmOn == "a" {
			a.warm[tp{"in", 2}] = true
		} else {
			b.warm[tp{"in", 2}] = true
		}
		plan := planStandby([]standbyMember{a, b}, map[string]int32{"in": 3})
		got := map[int32]string{}
		for id, parts := range plan {
			for _, p := range parts {
				got[p.partition] = id
			}
		}
		want := map[int32]string{0: "a", 1: "b", 2: warmOn}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("warm on %s: plan %v, want %v", warmOn, got, want)
		}
	}
	// A warm copy does not outweigh balance: b is full, so a gets 3.
	a, b := member("a", []int32{0}, nil), member("b", []int32{1, 2}, []int32{3})
	plan := planStandby([]standbyMember{a, b}, map[string]int32{"in": 4})
	if len(plan["a"]) != 2 || len(plan["b"]) != 2 || plan["a"][1].partition != 3 {
		t.Errorf("plan %v: want a=[0 3] b=[1 2]", plan)
	}
}

// Over random groups: every partition is assigned once, the counts differ
// by at most one, and a member loses a partition only it owned only when
// it holds its share.
func TestPlanStandbyInvariants(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1))
	for iter := 0; iter < 2000; iter++ {
		parts := int32(rng.IntN(16))
		n := 1 + rng.IntN(6)
		var members []standbyMember
		claims := map[int32]int{}
		for i := 0; i < n; i++ {
			var owned, warm []int32
			for p := int32(0); p < parts+2; p++ { // +2: stale claims beyond the topic
				if rng.IntN(3) == 0 {
					owned = append(owned, p)
					claims[p]++
				}
				if rng.IntN(3) == 0 {
					warm = append(warm, p)
				}
			}
			members = append(members, member(fmt.Sprintf("m%d", i), owned, warm))
		}
		plan := planStandby(members, map[string]int32{"in": parts})
		seen := map[int32]string{}
		minC, maxC := int(parts), 0
		for _, m := range members {
			got := plan[m.id]
			minC, maxC = min(minC, len(got)), max(maxC, len(got))
			for _, p := range got {
				if p.partition >= parts {
					t.Fatalf("seed %d iter %d: %s given partition %d of %d", seed, iter, m.id, p.partition, parts)
				}
				if other, dup := seen[p.partition]; dup {
					t.Fatalf("seed %d iter %d: partition %d given to %s and %s", seed, iter, p.partition, other, m.id)
				}
				seen[p.partition] = m.id
			}
		}
		if len(seen) != int(parts) {
			t.Fatalf("seed %d iter %d: %d of %d partitions assigned", seed, iter, len(seen), parts)
		}
		if maxC-minC > 1 {
			t.Fatalf("seed %d iter %d: counts from %d to %d", seed, iter, minC, maxC)
		}
		share := int(parts) / n
		for _, m := range members {
			for p := range m.owned {
				if p.partition < parts && claims[p.partition] == 1 && seen[p.partition] != m.id && len(plan[m.id]) < share {
					t.Fatalf("seed %d iter %d: %s lost its partition %d holding %d < share %d", seed, iter, m.id, p.partition, len(plan[m.id]), share)
				}
			}
		}
	}
}

// The warm set a member sends is what the leader reads back.
func TestStandbyJoinMetadataCarriesTheWarmSet(t *testing.T) {
	b := StandbyBalancer(func() map[string][]int32 { return map[string][]int32{"in": {2, 0}} })
	meta := b.JoinGroupMetadata([]string{"in"}, map[string][]int32{"in": {1}}, 7)
	members := []kmsg.JoinGroupResponseMember{{MemberID: "x", ProtocolMetadata: meta}}
	mb, topics, err := b.MemberBalancer(members)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := topics["in"]; !ok {
		t.Fatalf("topics %v", topics)
	}
	// One member owning 1 and warm on 0 and 2 gets all three.
	into, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(map[string]int32{"in": 3})
	if err != nil {
		t.Fatal(err)
	}
	assn := into.IntoSyncAssignment()
	if len(assn) != 1 {
		t.Fatalf("assignments %v", assn)
	}
	got, err := b.ParseSyncAssignment(assn[0].MemberAssignment)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "map[in:[0 1 2]]" {
		t.Errorf("assignment %v", got)
	}
	var m kmsg.ConsumerMemberMetadata
	if err := m.ReadFrom(meta); err != nil {
		t.Fatal(err)
	}
	var warm kmsg.ConsumerMemberAssignment
	if err := warm.ReadFrom(m.UserData); err != nil || fmt.Sprint(warm.Topics[0].Partitions) != "[0 2]" {
		t.Errorf("warm set in the metadata: %v %v", warm.Topics, err)
	}
}
