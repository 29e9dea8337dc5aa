package governance

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Magic is the first byte of a framed payload. A Confluent wire payload
// starts with 0x00, so the two are never confused.
const Magic = 0xC5

// Version is the envelope version this package writes and reads.
const Version = 1

// Bounds on an envelope, checked before anything is sliced or allocated.
const (
	MaxSubject = 1024    // bytes of a subject
	MaxFields  = 256     // sealed fields of one record
	MaxName    = 255     // bytes of one field name
	MaxJSON    = 1 << 20 // bytes of the sealed fields' JSON

	nonceSize     = 12
	gcmTagSize    = 16
	bindKeySize   = 32
	bindTagSize   = sha256.Size
	minCiphertext = gcmTagSize + bindKeySize + len("{}")
	maxCiphertext = gcmTagSize + bindKeySize + MaxJSON
)

var (
	// ErrCorrupt means a framed payload is malformed, or fails
	// authentication under the key that sealed it. It is never erasure.
	ErrCorrupt = errors.New("seal: corrupt sealed envelope")
	// ErrVersion means the envelope was written by a newer Meshlet.
	ErrVersion = errors.New("seal: unknown envelope version")
)

// IsFramed reports whether payload is a sealed frame rather than a plain
// wire payload. It looks at the magic byte only; Split checks the rest.
func IsFramed(payload []byte) bool { return len(payload) > 0 && payload[0] == Magic }

// Frame appends to dst the change-log payload for a record: the envelope
// Seal returned, bound to wire (see the package doc), then wire. A nil
// sealed (a row with nothing to seal) appends wire alone, a plain payload.
// Frame panics if sealed does not come from Seal.
func Frame(dst, sealed, wire []byte) []byte {
	if len(sealed) == 0 {
		return append(dst, wire...)
	}
	if len(sealed) < 2+bindKeySize || sealed[0] != Magic || sealed[1] != Version {
		panic("seal: Frame: sealed does not come from Seal")
	}
	env, bindKey := sealed[:len(sealed)-bindKeySize], sealed[len(sealed)-bindKeySize:]
	dst = append(dst, env...)
	dst = bindTag(dst, bindKey, env, wire)
	return append(dst, wire...)
}

func bindTag(dst, key, env, wire []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(env)
	mac.Write(wire)
	return mac.Sum(dst)
}

// Split splits a framed payload into its envelope (magic through binding
// tag) and its wire bytes, both aliasing payload. ok is false when payload
// is not a well-formed frame: then wire is payload itself if it is not
// framed at all (IsFramed false), and nil if it is a malformed frame.
func Split(payload []byte) (sealed, wire []byte, ok bool) {
	if !IsFramed(payload) {
		return nil, payload, false
	}
	env, err := parse(payload)
	if err != nil {
		return nil, nil, false
	}
	return payload[:env.end], payload[env.end:], true
}

// Opened is a change-log payload, opened.
type Opened struct {
	Wire    []byte // the Confluent wire bytes, sealed fields at their zero value
	Sealed  bool   // the payload was framed; all below is empty when not
	Subject string
	Names   []string       // the sealed fields, in the order sealed
	Fields  map[string]any // their values, when the key opened them
	Erased  []string       // the sealed fields, when the key is gone
}

// Open reads a change-log payload. A plain payload comes back as Wire. A
// framed one is opened with the subject's key from ks: its values land in
// Fields, or, if the key was destroyed or replaced, its field names in
// Erased. With a nil ks Open only parses: Fields and Erased stay nil.
//
// An error from ks other than ErrForgotten is returned, never taken for
// erasure. A payload that is malformed, fails authentication under the
// key that sealed it, or lacks its key while the subject was never
// forgotten is ErrCorrupt (see the package doc).
func Open(ctx context.Context, ks KeyStore, payload []byte) (Opened, error) {
	if !IsFramed(payload) {
		return Opened{Wire: payload}, nil
	}
	env, err := parse(payload)
	if err != nil {
		return Opened{}, err
	}
	o := Opened{Wire: payload[env.end:], Sealed: true, Subject: string(env.subject), Names: env.fieldNames()}
	if ks == nil {
		return o, nil
	}
	k, err := ks.Lookup(ctx, o.Subject)
	if err == nil && k.ID != env.keyID {
		// A cache may hold a key another replica destroyed and replaced;
		// ask the store itself before going further.
		if c, ok := ks.(interface{ Invalidate(string) }); ok {
			c.Invalidate(o.Subject)
			k, err = ks.Lookup(ctx, o.Subject)
		}
	}
	if err != nil && !errors.Is(err, ErrForgotten) {
		return Opened{}, fmt.Errorf("open sealed fields: %w", err)
	}
	if err != nil || k.ID != env.keyID {
		if err := erased(ctx, ks, &env, k, err == nil, o.Subject); err != nil {
			return Opened{}, err
		}
		o.Erased = slices.Clone(o.Names)
		return o, nil
	}
	plain, err := newGCM(&k.Secret).Open(nil, env.nonce, env.ciphertext, env.aad)
	if err != nil {
		return Opened{}, fmt.Errorf("%w: it fails authentication under key %s, which sealed it", ErrCorrupt, env.keyID)
	}
	defer clear(plain)
	var tag [bindTagSize]byte
	if !hmac.Equal(bindTag(tag[:0], plain[:bindKeySize], payload[:env.ciphertextEnd], o.Wire), env.tag) {
		return Opened{}, fmt.Errorf("%w: its binding tag does not match the wire bytes it is framed with (moved from another entry, or altered)", ErrCorrupt)
	}
	dec := json.NewDecoder(bytes.NewReader(plain[bindKeySize:]))
	dec.UseNumber()
	if err := dec.Decode(&o.Fields); err != nil || o.Fields == nil || dec.More() {
		return Opened{}, fmt.Errorf("%w: the sealed values, authenticated, are not one JSON object (a writer bug)", ErrCorrupt)
	}
	return o, nil
}

// erased decides whether an envelope whose key the store does not hold
// (cur, when hasCur, is the subject's key now) is erased, or a sign of
// tampering or of a key store that lost keys: the store must have
// recorded a forget of the subject, and the envelope must not open under
// the current key with its key id put back.
func erased(ctx context.Context, ks KeyStore, env *envelope, cur Key, hasCur bool, subject string) error {
	if hasCur {
		aad := slices.Clone(env.aad)
		copy(aad[env.keyIDAt:], cur.ID[:])
		if _, err := newGCM(&cur.Secret).Open(nil, env.nonce, env.ciphertext, aad); err == nil {
			return fmt.Errorf("%w: its key id was altered (it opens under the subject's current key %s)", ErrCorrupt, cur.ID)
		}
	}
	_, forgotten, err := ks.Forgotten(ctx, subject)
	if err != nil {
		return fmt.Errorf("open sealed fields: %w", err)
	}
	if !forgotten {
		return fmt.Errorf("%w: it was sealed under key %s, which the subject no longer has, yet the subject was never forgotten: "+
			"the envelope's subject or key id was altered, or the key store lost keys", ErrCorrupt, env.keyID)
	}
	return nil
}

// newGCM cannot fail: the key is 32 bytes and AES takes the default
// nonce and tag sizes.
func newGCM(secret *[32]byte) cipher.AEAD {
	block, err := aes.NewCipher(secret[:])
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// envelope is a parsed frame; its slices alias the payload.
type envelope struct {
	subject       []byte
	keyID         KeyID
	keyIDAt       int // offset of the key id
	nfields       int
	names         []byte // the names list, after its count
	aad           []byte // every byte before the nonce
	nonce         []byte
	ciphertext    []byte
	ciphertextEnd int
	tag           []byte
	end           int // where the wire bytes start
}

func (e *envelope) fieldNames() []string {
	names := make([]string, 0, e.nfields)
	b := e.names
	for range e.nfields {
		n, w := binary.Uvarint(b) // checked by parse
		names = append(names, string(b[w:w+int(n)]))
		b = b[w+int(n):]
	}
	return names
}

// parse reads the envelope of a frame. It allocates nothing, and reads no
// length it has not bounded first.
func parse(p []byte) (envelope, error) {
	var e envelope
	switch {
	case len(p) < 2:
		return e, fmt.Errorf("%w: %d bytes, too short for magic and version", ErrCorrupt, len(p))
	case p[0] != Magic:
		return e, fmt.Errorf("%w: magic byte %#x, want %#x", ErrCorrupt, p[0], Magic)
	case p[1] != Version:
		return e, fmt.Errorf("%w: version %d (this build reads %d)", ErrVersion, p[1], Version)
	}
	r := reader{b: p, off: 2}
	e.subject = r.lenPrefixed("subject", 1, MaxSubject)
	e.keyIDAt = r.off
	copy(e.keyID[:], r.bytes("key id", len(e.keyID)))
	e.nfields = r.count("field count", 1, MaxFields)
	namesStart := r.off
	for i := 0; i < e.nfields && r.err == nil; i++ {
		r.lenPrefixed("field name", 1, MaxName)
	}
	e.names = p[min(namesStart, r.off):r.off]
	e.aad = p[:r.off]
	e.nonce = r.bytes("nonce", nonceSize)
	e.ciphertext = r.lenPrefixed("ciphertext", minCiphertext, maxCiphertext)
	e.ciphertextEnd = r.off
	e.tag = r.bytes("binding tag", bindTagSize)
	e.end = r.off
	if r.err != nil {
		return envelope{}, r.err
	}
	return e, nil
}

// reader reads an envelope; the first error sticks and stops it.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
}

func (r *reader) bytes(what string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b)-r.off < n {
		r.fail("%s: %d bytes left at offset %d, need %d", what, len(r.b)-r.off, r.off, n)
		return nil
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b
}

func (r *reader) count(what string, lo, hi int) int {
	if r.err != nil {
		return 0
	}
	v, w := binary.Uvarint(r.b[r.off:])
	if w <= 0 {
		r.fail("%s at offset %d: bad uvarint", what, r.off)
		return 0
	}
	if v < uint64(lo) || v > uint64(hi) {
		r.fail("%s at offset %d is %d, want %d..%d", what, r.off, v, lo, hi)
		return 0
	}
	r.off += w
	return int(v)
}

func (r *reader) lenPrefixed(what string, lo, hi int) []byte {
	n := r.count(what+" length", lo, hi)
	return r.bytes(what, n)
}
