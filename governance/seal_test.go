package governance

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/meshlet/meshlet/internal/localredis"
	"github.com/meshlet/meshlet/schemas"
)

// customer is a handler's output row: email, phone and photo are PII.
type customer struct {
	ID    int64   `avro:"id"`
	Name  string  `avro:"name"`
	Email string  `avro:"email"`
	Phone *string `avro:"phone"`
	Score float64 `avro:"score"`
	Photo []byte  `avro:"photo"`
	VIP   bool    `avro:"vip"`
}

const customerSchema = `{"type":"record","name":"Customer","namespace":"test.crm","fields":[
	{"name":"id","type":"long"},
	{"name":"name","type":"string"},
	{"name":"email","type":"string"},
	{"name":"phone","type":["null","string"],"default":null},
	{"name":"score","type":"double"},
	{"name":"photo","type":"bytes"},
	{"name":"vip","type":"boolean"}]}`

var pii = []string{"email", "phone", "photo"}

func ptr[T any](v T) *T { return &v }

func ada() customer {
	return customer{ID: 1, Name: "Ada", Email: "ada@example.com", Phone: ptr("+44 20 7946 0000"), Score: 4.5, Photo: []byte{0, 1, 2, 255}, VIP: true}
}

// adaCleared is ada with her PII fields at their zero value.
func adaCleared() customer { return customer{ID: 1, Name: "Ada", Score: 4.5, VIP: true} }

// adaDecoded is adaCleared as the Avro decoder gives it back: bytes are
// never nil.
func adaDecoded() customer {
	c := adaCleared()
	c.Photo = []byte{}
	return c
}

func adaFields() map[string]any {
	return map[string]any{"email": "ada@example.com", "phone": "+44 20 7946 0000", "photo": base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 255})}
}

// wireFormat encodes rows to, and decodes them from, the Confluent wire
// format through an embedded registry over real HTTP.
type wireFormat struct {
	reg *schemas.Registry
	enc *schemas.Encoder
}

func newWireFormat(t testing.TB) *wireFormat {
	t.Helper()
	emb, err := schemas.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() })
	reg, err := schemas.NewRegistry([]string{emb.URL()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := schemas.Parse("customer.avsc", customerSchema)
	if err != nil {
		t.Fatal(err)
	}
	id, err := reg.Register(context.Background(), "crm-value", s, schemas.CompatBackward)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := schemas.NewEncoder(s, id)
	if err != nil {
		t.Fatal(err)
	}
	return &wireFormat{reg: reg, enc: enc}
}

func (w *wireFormat) encode(t testing.TB, row any) []byte {
	t.Helper()
	b, err := w.enc.Append(nil, row, schemas.Meta{ValidFrom: 1, SystemFrom: 2})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (w *wireFormat) decode(t testing.TB, wire []byte) customer {
	t.Helper()
	var c customer
	if _, _, err := w.reg.Decode(context.Background(), wire, &c); err != nil {
		t.Fatalf("wire does not decode: %v", err)
	}
	return c
}

// startRedis runs a real redis-server for the test.
func startRedis(t testing.TB) (*localredis.Server, func() *redis.Client) {
	t.Helper()
	srv, err := localredis.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv, func() *redis.Client {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}
}

// keyStores are the stores every store-agnostic test runs against.
func keyStores(t *testing.T) map[string]func(t *testing.T) KeyStore {
	return map[string]func(t *testing.T) KeyStore{
		"memory": func(*testing.T) KeyStore { return MemoryKeys() },
		"redis": func(t *testing.T) KeyStore {
			_, client := startRedis(t)
			return RedisKeys(client(), "crm")
		},
		"cached-redis": func(t *testing.T) KeyStore {
			_, client := startRedis(t)
			return Cached(RedisKeys(client(), "crm"), 2)
		},
	}
}

// sealRow seals row for subject and frames it with its wire bytes.
func sealRow(t testing.TB, s *Sealer, w *wireFormat, subject string, row any) (cleared any, payload []byte) {
	t.Helper()
	cleared, sealed, err := s.Seal(context.Background(), subject, row)
	if err != nil {
		t.Fatal(err)
	}
	return cleared, Frame(nil, sealed, w.encode(t, cleared))
}

func TestSealOpenRoundTrip(t *testing.T) {
	w := newWireFormat(t)
	ctx := context.Background()
	for name, newStore := range keyStores(t) {
		t.Run(name, func(t *testing.T) {
			ks := newStore(t)
			s, err := NewSealer(ks, customer{}, pii)
			if err != nil {
				t.Fatal(err)
			}
			row := ada()
			cleared, sealed, err := s.Seal(ctx, "c-1", row)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := cleared.(customer); !ok || !reflect.DeepEqual(got, adaCleared()) {
				t.Fatalf("cleared = %#v, want %#v", cleared, adaCleared())
			}
			if !reflect.DeepEqual(row, ada()) {
				t.Fatalf("Seal changed its input: %#v", row)
			}
			wire := w.encode(t, cleared)
			payload := Frame(nil, sealed, wire)
			for _, secret := range []string{"ada@example.com", "+44 20 7946 0000", "\x00\x01\x02\xff"} {
				if bytes.Contains(payload, []byte(secret)) {
					t.Fatalf("payload holds %q in clear", secret)
				}
			}
			env, gotWire, ok := Split(payload)
			if !ok || !bytes.Equal(gotWire, wire) || len(env)+len(gotWire) != len(payload) {
				t.Fatalf("Split = %d bytes, wire %x, %v; want the wire %x", len(env), gotWire, ok, wire)
			}

			o, err := Open(ctx, ks, payload)
			if err != nil {
				t.Fatal(err)
			}
			if !o.Sealed || o.Subject != "c-1" || !slices.Equal(o.Names, pii) || o.Erased != nil || !bytes.Equal(o.Wire, wire) {
				t.Fatalf("Open = %+v", o)
			}
			if !reflect.DeepEqual(o.Fields, adaFields()) {
				t.Fatalf("Fields = %#v, want %#v", o.Fields, adaFields())
			}
			if got := w.decode(t, o.Wire); !reflect.DeepEqual(got, adaDecoded()) {
				t.Fatalf("wire decodes to %#v", got)
			}

			// A pointer in, a fresh pointer out; the input stays as it was.
			p := ptr(ada())
			pc, _, err := s.Seal(ctx, "c-1", p)
			if err != nil {
				t.Fatal(err)
			}
			if c, ok := pc.(*customer); !ok || c == p || !reflect.DeepEqual(*c, adaCleared()) || !reflect.DeepEqual(*p, ada()) {
				t.Fatalf("Seal(pointer) = %#v, input now %#v", pc, p)
			}

			// A plain wire payload is passed through.
			o, err = Open(ctx, ks, wire)
			if err != nil || o.Sealed || !bytes.Equal(o.Wire, wire) || o.Fields != nil {
				t.Fatalf("Open(plain) = %+v, %v", o, err)
			}
		})
	}
}

func TestForgetErasesAndANewKeyDoesNotOpenOldData(t *testing.T) {
	w := newWireFormat(t)
	ctx := context.Background()
	for name, newStore := range keyStores(t) {
		t.Run(name, func(t *testing.T) {
			ks := newStore(t)
			s, err := NewSealer(ks, customer{}, pii)
			if err != nil {
				t.Fatal(err)
			}
			_, old := sealRow(t, s, w, "c-1", ada())
			_, other := sealRow(t, s, w, "c-2", ada())
			if _, ok, err := ks.Forgotten(ctx, "c-1"); ok || err != nil {
				t.Fatalf("Forgotten before the forget = %v, %v", ok, err)
			}
			if err := ks.Destroy(ctx, "c-1"); err != nil {
				t.Fatal(err)
			}
			if at, ok, err := ks.Forgotten(ctx, "c-1"); !ok || at.IsZero() || err != nil {
				t.Fatalf("Forgotten = %v, %v, %v", at, ok, err)
			}
			if _, err := ks.Lookup(ctx, "c-1"); !errors.Is(err, ErrForgotten) {
				t.Fatalf("Lookup after Destroy: %v, want ErrForgotten", err)
			}

			o, err := Open(ctx, ks, old)
			if err != nil {
				t.Fatal(err)
			}
			if !o.Sealed || o.Fields != nil || !slices.Equal(o.Erased, pii) || o.Subject != "c-1" {
				t.Fatalf("Open after the forget = %+v, want the PII fields erased", o)
			}
			if got := w.decode(t, o.Wire); !reflect.DeepEqual(got, adaDecoded()) {
				t.Fatalf("erased record's wire decodes to %#v", got)
			}
			// Other subjects keep their data.
			if o, err := Open(ctx, ks, other); err != nil || !reflect.DeepEqual(o.Fields, adaFields()) {
				t.Fatalf("another subject after the forget: %+v, %v", o, err)
			}

			// The subject comes back: a new key, which opens new data only.
			_, fresh := sealRow(t, s, w, "c-1", ada())
			oldEnv, _ := parse(old)
			freshEnv, _ := parse(fresh)
			if oldEnv.keyID == freshEnv.keyID {
				t.Fatal("a forgotten subject got its old key id back")
			}
			if o, err := Open(ctx, ks, fresh); err != nil || !reflect.DeepEqual(o.Fields, adaFields()) {
				t.Fatalf("new data: %+v, %v", o, err)
			}
			if o, err := Open(ctx, ks, old); err != nil || o.Fields != nil || !slices.Equal(o.Erased, pii) {
				t.Fatalf("old data under the new key: %+v, %v; want erased", o, err)
			}
		})
	}
}

func TestTamperingIsCorruption(t *testing.T) {
	w := newWireFormat(t)
	ctx := context.Background()
	ks := MemoryKeys()
	s, err := NewSealer(ks, customer{}, pii)
	if err != nil {
		t.Fatal(err)
	}
	_, payload := sealRow(t, s, w, "c-1", ada())
	env, _, _ := Split(payload)
	for i := range payload {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(payload)
			bad[i] ^= bit
			o, err := Open(ctx, ks, bad)
			switch {
			case i == 0:
				// No longer framed: read as a plain payload, which is not
				// a wire payload either.
				if _, _, werr := schemas.SplitWire(o.Wire); err != nil || o.Sealed || !errors.Is(werr, schemas.ErrMalformed) {
					t.Fatalf("magic ^ %#x: %+v, %v, wire error %v", bit, o, err, werr)
				}
			case i == 1:
				if !errors.Is(err, ErrVersion) {
					t.Fatalf("version ^ %#x: %v, want ErrVersion", bit, err)
				}
			default:
				if !errors.Is(err, ErrCorrupt) {
					where := "wire"
					if i < len(env) {
						where = "envelope"
					}
					t.Fatalf("%s byte %d ^ %#x: %+v, %v; want ErrCorrupt", where, i, bit, o, err)
				}
			}
		}
	}
	for n := 1; n < len(payload); n++ {
		if _, err := Open(ctx, ks, payload[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("payload cut to %d bytes: %v, want ErrCorrupt", n, err)
		}
	}
}

// TestAlteredKeyIDIsNotErasure: once a subject was forgotten and came
// back, an envelope sealed under the new key whose key id is altered to
// look old must not pass for erased.
func TestAlteredKeyIDIsNotErasure(t *testing.T) {
	w := newWireFormat(t)
	ctx := context.Background()
	ks := MemoryKeys()
	s, err := NewSealer(ks, customer{}, pii)
	if err != nil {
		t.Fatal(err)
	}
	_, old := sealRow(t, s, w, "c-1", ada())
	if err := ks.Destroy(ctx, "c-1"); err != nil {
		t.Fatal(err)
	}
	_, fresh := sealRow(t, s, w, "c-1", ada())
	oldEnv, _ := parse(old)
	freshEnv, _ := parse(fresh)
	bad := bytes.Clone(fresh)
	copy(bad[freshEnv.keyIDAt:], oldEnv.keyID[:])
	if o, err := Open(ctx, ks, bad); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "key id was altered") {
		t.Fatalf("new data with the old key id: %+v, %v", o, err)
	}
}

func TestMovedEnvelopeIsCorruption(t *testing.T) {
	w := newWireFormat(t)
	ctx := context.Background()
	ks := MemoryKeys()
	s, err := NewSealer(ks, customer{}, pii)
	if err != nil {
		t.Fatal(err)
	}
	_, p1 := sealRow(t, s, w, "c-1", ada())
	bob := ada()
	bob.Name, bob.Email = "Bob", "bob@example.com"
	_, p2 := sealRow(t, s, w, "c-1", bob)
	_, p3 := sealRow(t, s, w, "c-2", bob)
	env1, _, _ := Split(p1)
	for name, other := range map[string][]byte{"same subject": p2, "other subject": p3} {
		_, wire, _ := Split(other)
		moved := append(bytes.Clone(env1), wire...)
		if o, err := Open(ctx, ks, moved); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: Ada's envelope on another entry's wire: %+v, %v; want ErrCorrupt", name, o, err)
		}
	}
}

func TestKeyStoreOutageIsNotErasure(t *testing.T) {
	w := newWireFormat(t)
	ctx := context.Background()
	srv, _ := startRedis(t)
	// No retries: the outage is known, waiting it out only slows the test.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	ks := RedisKeys(rdb, "crm")
	s, err := NewSealer(ks, customer{}, pii)
	if err != nil {
		t.Fatal(err)
	}
	_, payload := sealRow(t, s, w, "c-1", ada())
	_, forgotten := sealRow(t, s, w, "c-2", ada())
	if err := ks.Destroy(ctx, "c-2"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for name, p := range map[string][]byte{"live subject": payload, "forgotten subject": forgotten} {
		o, err := Open(ctx, ks, p)
		if err == nil || errors.Is(err, ErrForgotten) || errors.Is(err, ErrCorrupt) || o.Erased != nil {
			t.Fatalf("%s, Redis down: Open = %+v, %v; want the transport error", name, o, err)
		}
	}
	if _, _, err := s.Seal(ctx, "c-1", ada()); err == nil {
		t.Fatal("Seal with Redis down succeeded")
	}
	if err := ks.Destroy(ctx, "c-1"); err == nil {
		t.Fatal("Destroy with Redis down succeeded")
	}
}

func TestLostKeysAreNotErasure(t *testing.T) {
	w := newWireFormat(t)
	ctx := context.Background()
	_, client := startRedis(t)
	rdb := client()
	ks := RedisKeys(rdb, "crm")
	s, err := NewSealer(ks, customer{}, pii)
	if err != nil {
		t.Fatal(err)
	}
	_, payload := sealRow(t, s, w, "c-1", ada())
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// The key is gone but no forget was recorded: Redis lost data (or
	// the envelope names another subject), and that must be loud.
	if o, err := Open(ctx, ks, payload); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "never forgotten") {
		t.Fatalf("Open after FLUSHALL = %+v, %v", o, err)
	}
	// Once a key exists again, the old envelope still does not open, and
	// is still not taken for erased.
	if _, err := ks.Current(ctx, "c-1"); err != nil {
		t.Fatal(err)
	}
	if o, err := Open(ctx, ks, payload); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open under a recreated key = %+v, %v", o, err)
	}
}

func TestConcurrentCurrentAgrees(t *testing.T) {
	_, client := startRedis(t)
	const replicas, perReplica, subjects = 6, 8, 5
	stores := map[string][]KeyStore{"memory": {MemoryKeys()}}
	for range replicas {
		// One client per replica, as separate processes would have.
		stores["redis"] = append(stores["redis"], RedisKeys(client(), "crm"))
	}
	for name, replicas := range stores {
		t.Run(name, func(t *testing.T) {
			got := make([][]Key, len(replicas)*perReplica)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for g := range got {
				ks := replicas[g%len(replicas)]
				wg.Go(func() {
					<-start
					for i := range subjects {
						k, err := ks.Current(context.Background(), fmt.Sprintf("s%d", i))
						if err != nil {
							t.Error(err)
							return
						}
						got[g] = append(got[g], k)
					}
				})
			}
			close(start)
			wg.Wait()
			for g := range got {
				if !slices.Equal(got[g], got[0]) || len(got[g]) != subjects {
					t.Fatalf("goroutine %d got keys %v, goroutine 0 %v", g, ids(got[g]), ids(got[0]))
				}
			}
			for i := 1; i < subjects; i++ {
				if got[0][i] == got[0][0] {
					t.Fatal("two subjects share a key")
				}
			}
		})
	}
}

func ids(ks []Key) []string {
	var s []string
	for _, k := range ks {
		s = append(s, k.ID.String())
	}
	return s
}

func TestCachedIsBounded(t *testing.T) {
	ctx := context.Background()
	mem := MemoryKeys()
	c := Cached(mem, 3)
	for i := range 10 {
		subject := fmt.Sprintf("s%d", i)
		k, err := c.Current(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		if direct, err := mem.Lookup(ctx, subject); err != nil || direct != k {
			t.Fatalf("cached key of %s differs from the store's: %v", subject, err)
		}
	}
	if c.Len() != 3 {
		t.Fatalf("cache holds %d subjects, bound 3", c.Len())
	}
	c.Invalidate("s9")
	if c.Len() != 2 {
		t.Fatalf("after Invalidate the cache holds %d subjects, want 2", c.Len())
	}
	if _, err := c.Lookup(ctx, "never"); !errors.Is(err, ErrForgotten) {
		t.Fatalf("Lookup of an unknown subject: %v", err)
	}
	if c.Len() != 2 {
		t.Fatal("the absence of a key was cached")
	}
}

// gatedStore holds a Lookup between reading the key and returning it.
type gatedStore struct {
	KeyStore
	read, release chan struct{}
}

func (g gatedStore) Lookup(ctx context.Context, subject string) (Key, error) {
	k, err := g.KeyStore.Lookup(ctx, subject)
	g.read <- struct{}{}
	<-g.release
	return k, err
}

func TestCachedDropsAFillThatRacedAnInvalidate(t *testing.T) {
	ctx := context.Background()
	mem := MemoryKeys()
	if _, err := mem.Current(ctx, "c-1"); err != nil {
		t.Fatal(err)
	}
	g := gatedStore{KeyStore: mem, read: make(chan struct{}), release: make(chan struct{})}
	c := Cached(g, 8)
	done := make(chan error)
	go func() {
		_, err := c.Lookup(ctx, "c-1")
		done <- err
	}()
	<-g.read // the old key is read, not yet cached
	if err := mem.Destroy(ctx, "c-1"); err != nil {
		t.Fatal(err)
	}
	c.Invalidate("c-1") // the forget command arrives
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Fatal("a key read before the Invalidate was cached after it")
	}
}

func TestCachedReplicaMissingAForget(t *testing.T) {
	w := newWireFormat(t)
	ctx := context.Background()
	_, client := startRedis(t)
	a := Cached(RedisKeys(client(), "crm"), 16)
	b := Cached(RedisKeys(client(), "crm"), 16)
	sa, _ := NewSealer(a, customer{}, pii)
	sb, _ := NewSealer(b, customer{}, pii)
	_, old := sealRow(t, sa, w, "c-1", ada()) // a caches the key
	if err := b.Destroy(ctx, "c-1"); err != nil {
		t.Fatal(err)
	}
	_, fresh := sealRow(t, sb, w, "c-1", ada())
	// a never heard of the forget: its cache is stale, yet it reads the
	// new data, and the old data as erased.
	if o, err := Open(ctx, a, fresh); err != nil || !reflect.DeepEqual(o.Fields, adaFields()) {
		t.Fatalf("stale replica opening new data: %+v, %v", o, err)
	}
	if o, err := Open(ctx, a, old); err != nil || !slices.Equal(o.Erased, pii) {
		t.Fatalf("stale replica opening old data: %+v, %v", o, err)
	}
}

func TestSubjectField(t *testing.T) {
	type order struct {
		ID         string `avro:"order_id"`
		CustomerID *int64 `avro:"customer_id"`
		Address    string `avro:"address"`
	}
	ctx := context.Background()
	ks := MemoryKeys()
	s, err := NewSealer(ks, &order{}, []string{"address"}, SubjectField("customer_id"))
	if err != nil {
		t.Fatal(err)
	}
	cleared, sealed, err := s.Seal(ctx, "o-9", order{ID: "o-9", CustomerID: ptr(int64(42)), Address: "1 Main St"})
	if err != nil {
		t.Fatal(err)
	}
	if c := cleared.(order); c.Address != "" || *c.CustomerID != 42 {
		t.Fatalf("cleared = %+v", c)
	}
	p := Frame(nil, sealed, []byte{0, 0, 0, 0, 1})
	o, err := Open(ctx, ks, p)
	if err != nil || o.Subject != "42" || o.Fields["address"] != "1 Main St" {
		t.Fatalf("Open = %+v, %v", o, err)
	}
	if _, _, err := s.Seal(ctx, "o-9", order{ID: "o-9", Address: "x"}); err == nil || !strings.Contains(err.Error(), "customer_id") {
		t.Fatalf("a row whose subject field is null: %v", err)
	}
	if err := ks.Destroy(ctx, "42"); err != nil {
		t.Fatal(err)
	}
	if o, err := Open(ctx, ks, p); err != nil || !slices.Equal(o.Erased, []string{"address"}) {
		t.Fatalf("after forgetting customer 42: %+v, %v", o, err)
	}
}

func TestSealerRefuses(t *testing.T) {
	ks := MemoryKeys()
	type bad struct {
		Tags []string `avro:"tags"`
		Mail string   `avro:"email"`
	}
	for _, tc := range []struct {
		name string
		row  any
		pii  []string
		opts []SealerOption
		ks   KeyStore
		want string
	}{
		{"not a struct", 3, pii, nil, ks, "must be a struct"},
		{"unknown field", customer{}, []string{"mail"}, nil, ks, `no field tagged avro:"mail"`},
		{"listed twice", customer{}, []string{"email", "email"}, nil, ks, "listed twice"},
		{"subject is PII", customer{}, pii, []SealerOption{SubjectField("email")}, ks, "both the subject field and PII"},
		{"unknown subject", customer{}, pii, []SealerOption{SubjectField("cid")}, ks, `avro:"cid", the subject field`},
		{"subject of a slice type", bad{}, []string{"email"}, []SealerOption{SubjectField("tags")}, ks, "want a string"},
		{"no key store", customer{}, pii, nil, nil, "no key store"},
	} {
		if _, err := NewSealer(tc.ks, tc.row, tc.pii, tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}

	s, err := NewSealer(ks, customer{}, pii)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name, key string
		row       any
		want      string
	}{
		{"another type", "c-1", bad{}, "given a governance.bad"},
		{"nil pointer", "c-1", (*customer)(nil), "nil *governance.customer"},
		{"nil", "c-1", nil, "given a <nil>"},
		{"no subject", "", ada(), "empty entity key"},
		{"subject too long", strings.Repeat("x", MaxSubject+1), ada(), "at most 1024"},
	} {
		if _, _, err := s.Seal(ctx, tc.key, tc.row); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Seal, %s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}

	// No PII: nothing sealed, a plain payload.
	none, err := NewSealer(nil, customer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, sealed, err := none.Seal(ctx, "c-1", ada())
	if err != nil || sealed != nil || !reflect.DeepEqual(c, ada()) {
		t.Fatalf("Seal with no PII = %v, %x, %v", c, sealed, err)
	}
	if got := Frame(nil, nil, []byte{0, 1}); !bytes.Equal(got, []byte{0, 1}) {
		t.Fatalf("Frame with nothing sealed = %x", got)
	}
}

func TestOpenWithoutKeyStoreNamesTheSealedFields(t *testing.T) {
	w := newWireFormat(t)
	s, _ := NewSealer(MemoryKeys(), customer{}, pii)
	_, payload := sealRow(t, s, w, "c-1", ada())
	o, err := Open(context.Background(), nil, payload)
	if err != nil || !o.Sealed || !slices.Equal(o.Names, pii) || o.Fields != nil || o.Erased != nil || o.Subject != "c-1" {
		t.Fatalf("Open(nil key store) = %+v, %v", o, err)
	}
}

func BenchmarkSeal(b *testing.B) {
	ks := Cached(MemoryKeys(), 0)
	s, err := NewSealer(ks, customer{}, pii)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	row := ada()
	wire := []byte{0, 0, 0, 0, 1, 2, 3}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		_, sealed, err := s.Seal(ctx, "c-1", row)
		if err != nil {
			b.Fatal(err)
		}
		buf = Frame(buf[:0], sealed, wire)
	}
}

func BenchmarkOpen(b *testing.B) {
	ks := Cached(MemoryKeys(), 0)
	s, _ := NewSealer(ks, customer{}, pii)
	ctx := context.Background()
	_, sealed, _ := s.Seal(ctx, "c-1", ada())
	payload := Frame(nil, sealed, []byte{0, 0, 0, 0, 1, 2, 3})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(ctx, ks, payload); err != nil {
			b.Fatal(err)
		}
	}
}
