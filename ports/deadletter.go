package ports

import "time"

// MaxRecentDeadLetters is the most dead letters one listing returns.
const MaxRecentDeadLetters = 500

// Dead is a dead letter as the management port lists it: why, from where,
// when, and the key; never the value, which may hold what the product's
// policies would hide.
type Dead struct {
	Partition       int32     `json:"partition"`
	Offset          int64     `json:"offset"`
	Time            time.Time `json:"time"`
	Class           string    `json:"class"`
	Message         string    `json:"message"`
	OriginTopic     string    `json:"origin_topic"`
	OriginPartition int32     `json:"origin_partition"`
	OriginOffset    int64     `json:"origin_offset"`
	Key             string    `json:"key"`
	ValueBytes      int       `json:"value_bytes"`
}
