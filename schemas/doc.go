// Package schemas owns everything Avro in Meshlet: schemas, the registry,
// the wire format, and decoding events nobody has vouched for. hamba/avro
// is used here and nowhere else, so it can be replaced in one place.
//
// # Row schema and published schema
//
// A domain engineer writes the row schema (an .avsc record) and a Go struct
// with avro tags. Output ports publish a different schema: the row schema
// with four fields appended, in this order:
//
//	_valid_from   long (timestamp-micros)
//	_valid_to     ["null", long (timestamp-micros)], default null = open
//	_system_from  long (timestamp-micros)
//	_deleted      boolean, default false
//
// A row that declares any of these names, or _system_to, is refused:
// Meshlet stamps them, handlers never do. Published is the text that is
// registered; Fingerprint hashes it. Both keep defaults and logical types,
// which Avro's Parsing Canonical Form would drop and which compatibility
// and consumers depend on.
//
// # Wire format
//
// Confluent's: byte 0 is magic 0, bytes 1-4 the schema id big-endian, then
// the Avro binary body. Avro encodes a record as its fields back to back,
// so the body is hamba's encoding of the row struct with the row schema
// followed by a hand-written tail: two zigzag varints, a union branch (0
// null, 1 then a varint), a varint and a boolean byte. The struct never
// carries meta fields and any Confluent-compatible consumer reads the
// event with the published schema.
//
// # Decoding untrusted events
//
// Anyone who can produce to a topic controls every length and count in an
// event, and hamba is archived with open decoder advisories. Every decode
// therefore goes through two checks (limits.go holds their values):
//
//   - a structural walk over a compiled form of the writer schema, which
//     proves the body is exactly one well-formed value before hamba runs:
//     strings and bytes at most MaxEventBytes (8 MiB, the largest event
//     Meshlet publishes, so whatever it wrote reads back) and within the
//     body, at most 100,000 array and map elements in the whole event (not
//     per array, or nested arrays multiply), nesting at most 64 deep,
//     union and enum indexes in range, no trailing bytes;
//   - one frozen hamba config with MaxByteSliceSize and MaxSliceAllocSize
//     set to the same limits, and a recover around the call, in case the
//     walk and hamba ever disagree.
//
// A rejected event wraps ErrMalformed: it will never decode, so it goes to
// a dead-letter topic rather than being retried.
//
// # Compatibility
//
// Register checks the new schema against the subject's registered versions
// itself before registering: the embedded registry answers every check
// "compatible", and a refused contract change should read the same
// whatever registry is behind the URL. Check does the same without
// registering (meshlet schema check). The seven Confluent levels are
// supported: BACKWARD (the new schema reads data written with the latest
// version), FORWARD (the latest reads data written with the new one), FULL
// (both), their _TRANSITIVE forms (against every version, newest first)
// and NONE. Resolution follows the Avro specification as Confluent's
// checker applies it (compat.go): fields match by name or a reader alias,
// missing reader fields need defaults, int/long/float promote upwards,
// string and bytes interchange, enums need the writer's symbols or a
// default. A refusal is a *CompatError naming subject, level, version,
// field and the rule broken:
//
//	subject inventory.products.v1-value: BACKWARD: new schema cannot read
//	version 3: field "sku" has no default (added required field)
//
// SubjectFor names subjects by Confluent's strategies: TopicName
// (<topic>-value), RecordName (<record>) and TopicRecordName
// (<topic>-<record>).
//
// # Reading with another schema
//
// DecodeWithReader decodes an event written with any registered version
// into a struct for the consumer's own (older or newer) schema, through
// hamba's schema resolution, after the same structural walk as Decode.
// Two hamba defects are fenced off rather than hit: its resolver never
// returns on a recursive reader record (a fatal stack overflow), and it
// cannot skip null values, so a reader that drops a field holding bare
// nulls (an array or map of null) is refused up front.
//
// # Code generation
//
// GenerateGo (meshlet gen) turns record schemas into Go structs with avro
// and json tags and, beside each, the full schema as a constant, so the
// type and the schema travel together.
//
// # Embedded registry
//
// StartEmbedded serves franz-go's in-memory srfake registry on a real TCP
// port, so `meshlet dev`, tests and non-Go consumers all talk HTTP to it
// exactly as to a real registry. Its contents are lost when it stops.
package schemas
