package mgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
)

// Command names a control command.
type Command string

// The control commands.
const (
	CommandPause     Command = "pause"
	CommandResume    Command = "resume"
	CommandReprocess Command = "reprocess"
	CommandPolicies  Command = "policies"
	CommandForget    Command = "forget"
	CommandSnapshot  Command = "snapshot"
)

// DefaultPolicyActions are the actions a policy may name when
// Server.PolicyActions is nil.
var DefaultPolicyActions = []string{"keep", "mask", "hash", "drop"}

// ControlRequest is a validated control command.
type ControlRequest struct {
	// ID is the client's Idempotency-Key, or "" for the Controller to
	// assign one. The Controller must treat a second Issue with the same
	// ID as the first (return the ID, issue nothing), so a client's retry
	// through another replica does not act twice.
	ID      string  `json:"id,omitempty"`
	Command Command `json:"command"`
	Reason  string  `json:"reason,omitempty"` // optional, for the audit trail

	// reprocess: from this offset of this input topic partition on.
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition,omitempty"`
	Offset    int64  `json:"offset,omitempty"`

	// policies: action by classification or field, e.g. pii: mask.
	Actions map[string]string `json:"actions,omitempty"`

	// forget: the data subject whose data is to be forgotten.
	Subject string `json:"subject,omitempty"`

	// snapshot: the snapshot output port to write; "" for every one.
	Port string `json:"port,omitempty"`
}

// Outcome is what one replica did with a command.
type Outcome struct {
	Replica string    `json:"replica"`
	State   string    `json:"state"` // e.g. pending, done, failed
	Detail  string    `json:"detail,omitempty"`
	At      time.Time `json:"at"`
}

// Controller carries commands to the product's replicas; the runtime
// implements it over its control plane.
type Controller interface {
	// Issue sends cmd on behalf of by and returns the command's id.
	Issue(ctx context.Context, cmd ControlRequest, by Principal) (id string, err error)
	// Outcomes reports what each replica did with command id so far.
	Outcomes(ctx context.Context, id string) ([]Outcome, error)
}

// Errors a Controller returns for the server to answer precisely.
var (
	ErrUnknownCommand = errors.New("no such command")                             // 404
	ErrConflict       = errors.New("command id already used for another request") // 409
	ErrInvalid        = errors.New("invalid command")                             // 400
)

// commandBody is every field any command's body may hold; which ones a
// command takes is checked after decoding, so each error can say what
// the command wants.
type commandBody struct {
	Reason    *string            `json:"reason"`
	Topic     *string            `json:"topic"`
	Partition *int32             `json:"partition"`
	Offset    *int64             `json:"offset"`
	Actions   *map[string]string `json:"actions"`
	Subject   *string            `json:"subject"`
	Port      *string            `json:"port"`
}

// commandFields are the body fields each command takes.
var commandFields = map[Command][]string{
	CommandPause:     {"reason"},
	CommandResume:    {"reason"},
	CommandReprocess: {"topic", "partition", "offset", "reason"},
	CommandPolicies:  {"actions", "reason"},
	CommandForget:    {"subject", "reason"},
	CommandSnapshot:  {"port", "reason"},
}

// badRequest is a 400 naming the field at fault.
type badRequest struct {
	field, msg string
}

func (e *badRequest) Error() string {
	if e.field == "" {
		return e.msg
	}
	return e.field + ": " + e.msg
}

func (s *Server) control(cmd Command) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Control == nil {
			s.reply(w, http.StatusServiceUnavailable, errorBody{Error: "this product takes no control commands"})
			return
		}
		by, _ := PrincipalFrom(r.Context())
		req, err := s.parseCommand(cmd, w, r)
		if err != nil {
			var tooBig *http.MaxBytesError
			var bad *badRequest
			switch {
			case errors.As(err, &tooBig):
				s.reply(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("body over %d bytes", tooBig.Limit)})
			case errors.As(err, &bad):
				s.reply(w, http.StatusBadRequest, errorBody{Error: bad.Error(), Field: bad.field})
			default:
				s.reply(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			}
			return
		}
		fp := fingerprint(req, by)
		if req.ID != "" {
			switch id, seen, same := s.idem.lookup(req.ID, fp); {
			case seen && same:
				s.accepted(w, req.Command, id, true)
				return
			case seen:
				s.reply(w, http.StatusConflict, errorBody{Error: "Idempotency-Key " + req.ID + " was used for a different request", Field: "Idempotency-Key"})
				return
			}
		}
		id, err := s.Control.Issue(r.Context(), req, by)
		if err != nil {
			s.controlError(w, err)
			return
		}
		if req.ID != "" {
			s.idem.remember(req.ID, fp, id)
		}
		s.log().Info("mgmt control", "command", req.Command, "id", id, "principal", by.Name, "role", by.Role)
		s.accepted(w, req.Command, id, false)
	})
}

func (s *Server) accepted(w http.ResponseWriter, cmd Command, id string, replayed bool) {
	loc := "/v1/control/commands/" + url.PathEscape(id)
	w.Header().Set("Location", loc)
	s.reply(w, http.StatusAccepted, map[string]any{"command_id": id, "command": cmd, "location": loc, "replayed": replayed})
}

func (s *Server) controlError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrInvalid):
		s.reply(w, http.StatusBadRequest, errorBody{Error: err.Error()})
	case errors.Is(err, ErrConflict):
		s.reply(w, http.StatusConflict, errorBody{Error: err.Error()})
	case errors.Is(err, ErrUnknownCommand):
		s.reply(w, http.StatusNotFound, errorBody{Error: err.Error()})
	default:
		s.log().Error("mgmt control", "err", err)
		s.reply(w, http.StatusServiceUnavailable, errorBody{Error: "control plane: " + err.Error()})
	}
}

func (s *Server) outcomes(w http.ResponseWriter, r *http.Request) {
	if s.Control == nil {
		s.reply(w, http.StatusServiceUnavailable, errorBody{Error: "this product takes no control commands"})
		return
	}
	id := r.PathValue("id")
	out, err := s.Control.Outcomes(r.Context(), id)
	if err != nil {
		s.controlError(w, err)
		return
	}
	s.reply(w, http.StatusOK, map[string]any{"command_id": id, "outcomes": orEmpty(out)})
}

// parseCommand reads and validates a command's body and headers. Unknown
// fields, fields the command does not take, trailing data and missing or
// out-of-range values are refused, each naming the field.
func (s *Server) parseCommand(cmd Command, w http.ResponseWriter, r *http.Request) (ControlRequest, error) {
	req := ControlRequest{Command: cmd}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if err := checkKey(key); err != nil {
			return req, err
		}
		req.ID = key
	}
	data, err := io.ReadAll(r.Body) // capped by limitBody
	if err != nil {
		return req, err
	}
	var b commandBody
	if len(bytes.TrimSpace(data)) > 0 {
		if err := decodeStrict(data, &b); err != nil {
			return req, err
		}
	}
	takes := commandFields[cmd]
	given := map[string]bool{
		"reason": b.Reason != nil, "topic": b.Topic != nil, "partition": b.Partition != nil,
		"offset": b.Offset != nil, "actions": b.Actions != nil, "subject": b.Subject != nil, "port": b.Port != nil,
	}
	for _, f := range []string{"topic", "partition", "offset", "actions", "subject", "port"} {
		if given[f] && !slices.Contains(takes, f) {
			return req, &badRequest{f, fmt.Sprintf("%s takes no %s; it takes %s", cmd, f, strings.Join(takes, ", "))}
		}
	}
	if b.Reason != nil {
		req.Reason = *b.Reason
	}
	missing := func(f, want string) error { return &badRequest{f, "missing; want " + want} }
	switch cmd {
	case CommandReprocess:
		switch {
		case b.Topic == nil || *b.Topic == "":
			return req, missing("topic", "the input topic to reprocess")
		case b.Partition == nil:
			return req, missing("partition", "the partition number")
		case b.Offset == nil:
			return req, missing("offset", "the first offset to reprocess")
		case *b.Partition < 0:
			return req, &badRequest{"partition", "want 0 or more"}
		case *b.Offset < 0:
			return req, &badRequest{"offset", "want 0 or more"}
		}
		if topics := s.inputTopics(); len(topics) > 0 && !slices.Contains(topics, *b.Topic) {
			return req, &badRequest{"topic", fmt.Sprintf("%q is not an input topic of this product; want %s", *b.Topic, strings.Join(topics, ", "))}
		}
		req.Topic, req.Partition, req.Offset = *b.Topic, *b.Partition, *b.Offset
	case CommandPolicies:
		if b.Actions == nil || len(*b.Actions) == 0 {
			return req, missing("actions", `a map of classification or field to action, e.g. {"pii": "mask"}`)
		}
		allowed := s.PolicyActions
		if allowed == nil {
			allowed = DefaultPolicyActions
		}
		keys := make([]string, 0, len(*b.Actions))
		for k := range *b.Actions {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v := (*b.Actions)[k]
			if strings.TrimSpace(k) == "" {
				return req, &badRequest{"actions", "an empty classification or field name"}
			}
			if !slices.Contains(allowed, v) {
				return req, &badRequest{"actions." + k, fmt.Sprintf("%q is not an action; want %s", v, strings.Join(allowed, ", "))}
			}
		}
		req.Actions = *b.Actions
	case CommandForget:
		if b.Subject == nil || strings.TrimSpace(*b.Subject) == "" {
			return req, missing("subject", "the data subject to forget")
		}
		req.Subject = *b.Subject
	case CommandSnapshot:
		if b.Port != nil {
			if *b.Port == "" || strings.TrimSpace(*b.Port) != *b.Port {
				return req, &badRequest{"port", fmt.Sprintf("%q is not a port name; leave port out to write every snapshot port", *b.Port)}
			}
			req.Port = *b.Port
		}
	}
	return req, nil
}

func (s *Server) inputTopics() []string {
	var out []string
	for _, in := range s.Product.Inputs {
		out = append(out, in.Topic)
	}
	return out
}

// decodeStrict decodes one JSON object into v, refusing unknown fields
// and anything after it.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			return &badRequest{typeErr.Field, fmt.Sprintf("want %s, got a JSON %s", jsonKind(typeErr.Type), typeErr.Value)}
		case errors.Is(err, io.ErrUnexpectedEOF):
			return &badRequest{"", "body is not valid JSON: it ends early"}
		case errors.As(err, &syntaxErr):
			return &badRequest{"", fmt.Sprintf("body is not valid JSON (at byte %d): %v", syntaxErr.Offset, err)}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &badRequest{name, "unknown field"}
		}
		return &badRequest{"", "body: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &badRequest{"", "body holds more than one JSON value"}
	}
	return nil
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct:
		return "an object"
	case reflect.Map:
		return "an object of strings"
	case reflect.String:
		return "a string"
	case reflect.Int32:
		return "a whole number up to 2147483647"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	}
	return "a " + t.Kind().String()
}

// checkKey admits Idempotency-Keys that are safe in a URL path and a log.
func checkKey(key string) error {
	if len(key) > 128 {
		return &badRequest{"Idempotency-Key", "longer than 128 characters"}
	}
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:", c)) {
			return &badRequest{"Idempotency-Key", "want letters, digits and - _ . : only"}
		}
	}
	return nil
}

// fingerprint identifies a request for idempotency: the same key with a
// different command, body or principal is a conflict, not a retry.
func fingerprint(req ControlRequest, by Principal) string {
	req.ID = ""
	b, _ := json.Marshal(struct {
		By  Principal
		Req ControlRequest
	}{by, req})
	return string(b)
}

// idempotency remembers the last size Idempotency-Keys this replica
// accepted, so a retry is answered without issuing again. Across replicas
// the Controller's dedup by ID does the same.
type idempotency struct {
	mu    sync.Mutex
	size  int
	byKey map[string]idemEntry
	order []string
}

type idemEntry struct{ print, id string }

func newIdempotency(size int) *idempotency {
	return &idempotency{size: size, byKey: map[string]idemEntry{}}
}

func (m *idempotency) lookup(key, print string) (id string, seen, same bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.byKey[key]
	return e.id, ok, ok && e.print == print
}

func (m *idempotency) remember(key, print, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byKey[key]; ok {
		return
	}
	m.byKey[key] = idemEntry{print, id}
	m.order = append(m.order, key)
	if len(m.order) > m.size {
		delete(m.byKey, m.order[0])
		m.order = m.order[1:]
	}
}
