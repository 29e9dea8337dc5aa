package schemas

import "github.com/hamba/avro/v2"

// MaxEventBytes is the largest event Meshlet writes or reads: no record it
// publishes is larger, whatever a topic would accept (package runtime
// checks each against this and its topics' limits), and the decoder reads
// a string or bytes value of up to this size, so every entry the change
// log holds reads back.
const MaxEventBytes = 8 << 20

// Decode limits, in one place. An event is read from a topic anyone with
// produce rights can write to, so a length or count field must never be
// trusted to size an allocation.
const (
	// maxBytesLen bounds one string or bytes value: no value is larger
	// than the event that holds it. A length must also lie within the
	// body (the walk checks), so the bound costs no allocation.
	maxBytesLen = MaxEventBytes
	// maxItems bounds the array and map elements of one whole event, not of
	// one array: nested arrays would otherwise multiply a small input into
	// billions of elements.
	maxItems = 100_000
	// maxDepth bounds nesting (records, unions, arrays, maps). A recursive
	// schema lets every input byte open a level, and a Go stack overflow is
	// fatal, not a recoverable panic.
	maxDepth = 64
)

// codec is the one hamba configuration the package uses, for encoding and
// decoding alike so its type caches are shared. hamba checks the same
// limits as the structural walk (see walk.go); the walk runs first and is
// what the package relies on, hamba's checks are the second line.
var codec = avro.Config{
	TagKey:            "avro",
	MaxByteSliceSize:  maxBytesLen,
	MaxSliceAllocSize: maxItems,
}.Freeze()
