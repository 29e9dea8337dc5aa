package bench

import (
	"bytes"
	"fmt"
	"strconv"
)

// Keys is how many distinct products the synthetic input updates.
const Keys = 10_000

// Event is the i-th synthetic Debezium JSON update (Postgres, plain
// envelope), byte for byte the one runtime's BenchmarkPipeline uses.
func Event(i int) (key, value []byte) {
	id := 1000 + i%Keys
	key = []byte(`{"id":` + strconv.Itoa(id) + `}`)
	value = fmt.Appendf(nil, `{"before":{"id":%d,"name":"hammer","description":"16oz carpenter's hammer","weight":1.0},`+
		`"after":{"id":%d,"name":"hammer","description":"18oz carpenter hammer","weight":%d.5},`+
		`"source":{"version":"1.2.1.Final","connector":"postgresql","name":"fullfillment","ts_ms":%d,"snapshot":"false",`+
		`"db":"postgres","schema":"inventory","table":"products","txId":%d,"lsn":%d,"xmin":null},"op":"u","ts_ms":%d,"transaction":null}`,
		id, id, i%100, 1596010889629+int64(i), 602+i, 34131104+int64(i)*64, 1596010889800+int64(i))
	return key, value
}

// TimedEvent is Event i committed at the source at tsMicros: source.ts_us
// carries it (Debezium 2 sends ts_us and ts_ns beside ts_ms), so it comes
// back as the valid time of the output.
func TimedEvent(i int, tsMicros int64) (key, value []byte) {
	id := 1000 + i%Keys
	key = []byte(`{"id":` + strconv.Itoa(id) + `}`)
	value = fmt.Appendf(nil, `{"before":{"id":%d,"name":"hammer","description":"16oz carpenter's hammer","weight":1.0},`+
		`"after":{"id":%d,"name":"hammer","description":"18oz carpenter hammer","weight":%d.5},`+
		`"source":{"version":"2.7.0.Final","connector":"postgresql","name":"fullfillment","ts_ms":%d,"ts_us":%d,"snapshot":"false",`+
		`"db":"postgres","schema":"inventory","table":"products","txId":%d,"lsn":%d,"xmin":null},"op":"u","ts_ms":%d,"transaction":null}`,
		id, id, i%100, tsMicros/1000, tsMicros, 602+i, 34131104+int64(i)*64, tsMicros/1000)
	return key, value
}

// rawTimestamp reads source.ts_us back from an event copied as it is.
func rawTimestamp(value []byte) (int64, bool) {
	const field = `"ts_us":`
	at := bytes.Index(value, []byte(field))
	if at < 0 {
		return 0, false
	}
	rest := value[at+len(field):]
	end := bytes.IndexAny(rest, ",}")
	if end < 0 {
		return 0, false
	}
	ts, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return ts, err == nil
}

// expected is what the mapping must make of event i: the row fields and
// the valid time in microseconds.
type expected struct {
	id          int32
	name        string
	description string
	weightKg    float64
	validFrom   int64
}

func expectFor(i int) expected {
	return expected{
		id:          int32(1000 + i%Keys),
		name:        "hammer",
		description: "18oz carpenter hammer",
		weightKg:    float64(i%100) + 0.5,
		validFrom:   (1596010889629 + int64(i)) * 1000,
	}
}

// eventIndex recovers i from the valid time of a throughput event's output.
func eventIndex(validFromMicros int64) int {
	return int(validFromMicros/1000 - 1596010889629)
}
