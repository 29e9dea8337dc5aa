package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/ThreeDotsLabs/watermill"
)

// Kind says what a command asks a product to do.
type Kind string

const (
	KindPause     Kind = "pause"     // stop consuming input; outputs and offsets stay as committed
	KindResume    Kind = "resume"    // consume again from the committed offsets
	KindReprocess Kind = "reprocess" // consume one input partition again from an offset
	KindPolicy    Kind = "policy"    // replace the product's governance actions
	KindForget    Kind = "forget"    // erase a data subject from the product's serving state
	KindSnapshot  Kind = "snapshot"  // write a snapshot to the product's snapshot output ports now
)

var kinds = []Kind{KindPause, KindResume, KindReprocess, KindPolicy, KindForget, KindSnapshot}

// Command is one control instruction to every replica of a product. It
// travels as JSON; the field names in errors are its JSON names.
type Command struct {
	// ID is unique per command and chosen by the issuer (NewID when it has
	// no scheme of its own). It is what makes delivery idempotent: an issuer
	// that retries a publish reuses the ID, and each replica runs a given ID
	// once. It is also the key to the command's outcomes (Bus.Results).
	ID      string `json:"id"`
	Kind    Kind   `json:"kind"`
	Product string `json:"product"` // the product's URN, e.g. urn:dataproduct:inventory:products

	// Exactly the argument of the command's kind is set; pause and resume
	// take none, and snapshot's is optional.
	Reprocess *Reprocess `json:"reprocess,omitempty"`
	Policy    *Policy    `json:"policy,omitempty"`
	Forget    *Forget    `json:"forget,omitempty"`
	Snapshot  *Snapshot  `json:"snapshot,omitempty"`

	Issuer   Issuer    `json:"issuer"`
	IssuedAt time.Time `json:"issued_at"`
}

// Reprocess asks the product to consume one input partition again from
// Offset (inclusive).
type Reprocess struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Policy replaces the product's governance actions, e.g. {"restricted":
// "mask", "email": "drop"}. The bus checks only the shape; the handler
// decides which names and actions it understands and rejects the rest.
type Policy struct {
	Actions map[string]string `json:"actions"`
}

// Forget asks the product to erase everything it serves about one data
// subject.
type Forget struct {
	Subject string `json:"subject"`
}

// Snapshot asks the product to write a snapshot now to its snapshot output
// port Port, or to every one of them when Port is empty.
type Snapshot struct {
	Port string `json:"port,omitempty"`
}

// Issuer is who issued a command, for the audit trail: the principal the
// control port authenticated and the role it was authorised under.
type Issuer struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// NewID returns a fresh command ID (a random UUID).
func NewID() string { return watermill.NewUUID() }

// FieldError says which field of a command is wrong, and why.
type FieldError struct {
	Field string // JSON path, e.g. "reprocess.offset"
	Msg   string
}

func (e *FieldError) Error() string { return "control: command " + e.Field + " " + e.Msg }

var (
	// The same shapes runtime.Manifest accepts for a product id and a topic.
	urnPattern   = regexp.MustCompile(`^urn:[a-z0-9][a-z0-9-]{0,31}:[^\s]+$`)
	topicPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
)

// maxIDLen bounds an ID: it becomes part of Redis keys.
const maxIDLen = 128

// Validate reports every problem of c, each as a *FieldError (joined with
// errors.Join), or nil.
func (c Command) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}

	switch {
	case c.ID == "":
		bad("id", "is empty; give every command a unique id (control.NewID makes one)")
	case len(c.ID) > maxIDLen:
		bad("id", "is %d bytes long; keep it at most %d", len(c.ID), maxIDLen)
	case strings.IndexFunc(c.ID, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0:
		bad("id", "is %q; it may not contain spaces or control characters", c.ID)
	}

	switch {
	case c.Kind == "":
		bad("kind", "is missing; want one of %s", kindList())
	case !slices.Contains(kinds, c.Kind):
		bad("kind", "is %q; want one of %s", c.Kind, kindList())
	}

	if !urnPattern.MatchString(c.Product) {
		bad("product", "is %q; want the product's URN, e.g. urn:dataproduct:inventory:products", c.Product)
	}

	// Each argument belongs to one kind: present there, absent elsewhere.
	if c.Kind == KindReprocess {
		switch r := c.Reprocess; {
		case r == nil:
			bad("reprocess", "is missing; a reprocess command names a topic, a partition and an offset")
		default:
			if !topicPattern.MatchString(r.Topic) {
				bad("reprocess.topic", "is %q; want a Kafka topic name (letters, digits, '.', '_', '-')", r.Topic)
			}
			if r.Partition < 0 {
				bad("reprocess.partition", "is %d; want a partition number, 0 or more", r.Partition)
			}
			if r.Offset < 0 {
				bad("reprocess.offset", "is %d; want the offset to consume from, 0 or more", r.Offset)
			}
		}
	} else if c.Reprocess != nil {
		bad("reprocess", "is set on a %q command; only reprocess commands carry it", c.Kind)
	}
	if c.Kind == KindPolicy {
		switch p := c.Policy; {
		case p == nil:
			bad("policy", "is missing; a policy command carries the actions to apply")
		case len(p.Actions) == 0:
			bad("policy.actions", "is empty; name at least one action, e.g. {\"restricted\": \"mask\"}")
		default:
			names := make([]string, 0, len(p.Actions))
			for name := range p.Actions {
				names = append(names, name)
			}
			slices.Sort(names) // errors in a stable order
			for _, name := range names {
				if strings.TrimSpace(name) == "" {
					bad("policy.actions", "has an empty name; every action applies to a named field or classification")
				} else if strings.TrimSpace(p.Actions[name]) == "" {
					bad("policy.actions."+name, "is empty; say what to do, e.g. mask or drop")
				}
			}
		}
	} else if c.Policy != nil {
		bad("policy", "is set on a %q command; only policy commands carry it", c.Kind)
	}
	if c.Kind == KindForget {
		switch f := c.Forget; {
		case f == nil:
			bad("forget", "is missing; a forget command names the data subject")
		case strings.TrimSpace(f.Subject) == "":
			bad("forget.subject", "is empty; name the data subject to forget")
		}
	} else if c.Forget != nil {
		bad("forget", "is set on a %q command; only forget commands carry it", c.Kind)
	}

	if c.Kind == KindSnapshot {
		if c.Snapshot != nil && c.Snapshot.Port != "" && strings.TrimSpace(c.Snapshot.Port) != c.Snapshot.Port {
			bad("snapshot.port", "is %q; a port name has no surrounding blanks", c.Snapshot.Port)
		}
	} else if c.Snapshot != nil {
		bad("snapshot", "is set on a %q command; only snapshot commands carry it", c.Kind)
	}

	if strings.TrimSpace(c.Issuer.Name) == "" {
		bad("issuer.name", "is empty; the audit trail needs the principal who issued the command")
	}
	if strings.TrimSpace(c.Issuer.Role) == "" {
		bad("issuer.role", "is empty; the audit trail needs the role the command was authorised under")
	}
	if c.IssuedAt.IsZero() {
		bad("issued_at", "is missing; stamp the time the command was issued")
	}
	return errors.Join(errs...)
}

func kindList() string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// decodeCommand reads a command strictly: a replica must never half-apply a
// command it does not fully understand (a field from a newer issuer, say),
// so unknown fields are an error. When the payload is bad but names an ID,
// that ID is returned with the error so the rejection can be recorded.
func decodeCommand(payload []byte) (Command, string, error) {
	var c Command
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	err := dec.Decode(&c)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the command")
	}
	if err == nil {
		return c, c.ID, nil
	}
	var head struct {
		ID string `json:"id"`
	}
	if json.NewDecoder(bytes.NewReader(payload)).Decode(&head) == nil && head.ID != "" && len(head.ID) <= maxIDLen {
		return Command{}, head.ID, fmt.Errorf("control: decode command: %w", err)
	}
	return Command{}, "", fmt.Errorf("control: decode command: %w", err)
}
