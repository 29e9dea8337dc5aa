package ports

import (
	"errors"
	"fmt"
)

// Class says why an input event went to the dead-letter topic. Its String
// is what the dead-letter header and the metrics label carry.
type Class uint8

// The dead-letter classes. Each is the fault of one event, never of the
// platform: the product sends the event aside and keeps going.
const (
	ClassMalformed Class = iota + 1 // the bytes are not a change of the port's format
	ClassHandler                    // the handler refused the change
	ClassPanic                      // the handler panicked
	ClassContract                   // a record breaks a contract rule that dead-letters
	ClassSchema                     // a record does not fit the output schema (or its policy)
	ClassTooLarge                   // a record is larger than the topics accept
)

var classNames = [...]string{
	ClassMalformed: "malformed",
	ClassHandler:   "handler",
	ClassPanic:     "panic",
	ClassContract:  "contract",
	ClassSchema:    "schema",
	ClassTooLarge:  "too-large",
}

func (c Class) String() string {
	if int(c) < len(classNames) && classNames[c] != "" {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// ParseClass reads a class from its String (a dead-letter header).
func ParseClass(s string) (Class, bool) {
	for c, name := range classNames {
		if name == s && name != "" {
			return Class(c), true
		}
	}
	return 0, false
}

// Poison is the error of an input event that cannot be processed: the
// runtime rolls back what the event produced and dead-letters it.
type Poison struct {
	Class Class
	Err   error
}

// Poisoned wraps err as the poison of one event.
func Poisoned(c Class, err error) *Poison { return &Poison{Class: c, Err: err} }

func (p *Poison) Error() string { return p.Err.Error() }
func (p *Poison) Unwrap() error { return p.Err }

// AsPoison finds the Poison in err's chain.
func AsPoison(err error) (*Poison, bool) {
	var p *Poison
	ok := errors.As(err, &p)
	return p, ok
}

// Dead-letter header names. A dead letter keeps the original key and value
// untouched when it fits its topic; these headers say why it is there and
// where it came from.
const (
	HeaderErrorClass      = "meshlet.error.class"
	HeaderErrorMessage    = "meshlet.error.message"
	HeaderOriginTopic     = "meshlet.origin.topic"
	HeaderOriginPartition = "meshlet.origin.partition"
	HeaderOriginOffset    = "meshlet.origin.offset"
	HeaderProduct         = "meshlet.product"
	// A dead letter too large for its topic keeps its headers but not its
	// value (nor, when that is too large as well, its key): these say what
	// it was, so the event can be found again at its origin.
	HeaderValueDigest = "meshlet.value.sha256" // hex SHA-256 of the original value
	HeaderValueBytes  = "meshlet.value.bytes"  // the original value's length
	HeaderKeyDigest   = "meshlet.key.sha256"   // hex SHA-256 of the original key, when it was dropped too
)
