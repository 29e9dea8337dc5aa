package runtime

// Delivery is what a product promises its consumers about duplicates.
type Delivery int

const (
	// ExactlyOnce commits outputs, dead letters and input offsets in one Kafka
	// transaction per batch, and keeps the change log equal to what committed.
	ExactlyOnce Delivery = iota
	// AtLeastOnce produces, waits for acknowledgement, then commits offsets. A
	// crash in between publishes the batch again. It exists to measure what
	// exactly-once costs.
	AtLeastOnce
)

func (d Delivery) String() string {
	if d == AtLeastOnce {
		return "at-least-once"
	}
	return "exactly-once"
}
