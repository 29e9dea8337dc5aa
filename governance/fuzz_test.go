package governance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// fuzzSeeds seals a few records with ks: one whose subject is then
// forgotten. It returns the payloads that are genuine.
func fuzzSeeds(f *testing.F, ks KeyStore) [][]byte {
	ctx := context.Background()
	s, err := NewSealer(ks, customer{}, pii)
	if err != nil {
		f.Fatal(err)
	}
	wire := []byte{0, 0, 0, 0, 7, 2, 'h', 'i'}
	var good [][]byte
	for _, subject := range []string{"c-1", "c-2", "gone"} {
		_, sealed, err := s.Seal(ctx, subject, ada())
		if err != nil {
			f.Fatal(err)
		}
		good = append(good, Frame(nil, sealed, wire))
	}
	if err := ks.Destroy(ctx, "gone"); err != nil {
		f.Fatal(err)
	}
	for _, p := range good {
		f.Add(p)
		f.Add(p[:len(p)/2])
		env, _, _ := Split(p)
		f.Add(env)
	}
	f.Add(wire)
	f.Add([]byte{})
	f.Add([]byte{Magic})
	f.Add([]byte{Magic, Version})
	f.Add([]byte{Magic, Version, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{Magic, 2})
	return good
}

func FuzzSplit(f *testing.F) {
	fuzzSeeds(f, MemoryKeys())
	f.Fuzz(func(t *testing.T, payload []byte) {
		sealed, wire, ok := Split(payload)
		if !ok {
			if IsFramed(payload) && wire != nil || !IsFramed(payload) && !bytes.Equal(wire, payload) {
				t.Fatalf("not split, yet wire = %x", wire)
			}
			return
		}
		if !bytes.Equal(append(bytes.Clone(sealed), wire...), payload) {
			t.Fatal("envelope and wire do not add up to the payload")
		}
		// The envelope alone splits the same way, with no wire.
		again, rest, ok := Split(sealed)
		if !ok || !bytes.Equal(again, sealed) || len(rest) != 0 {
			t.Fatalf("the envelope alone splits to %d bytes + %d, %v", len(again), len(rest), ok)
		}
	})
}

func FuzzOpen(f *testing.F) {
	ks := MemoryKeys()
	good := fuzzSeeds(f, ks)
	f.Fuzz(func(t *testing.T, payload []byte) {
		o, err := Open(context.Background(), ks, payload)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error of no class: %v", err)
			}
			return
		}
		if !o.Sealed {
			if !bytes.Equal(o.Wire, payload) || IsFramed(payload) {
				t.Fatalf("plain Open changed the payload, or took a frame for plain")
			}
			return
		}
		genuine := false
		for _, p := range good {
			genuine = genuine || bytes.Equal(p, payload)
		}
		switch {
		case o.Erased != nil:
			if o.Subject != "gone" {
				t.Fatalf("subject %q, never forgotten, reads as erased", o.Subject)
			}
		case !genuine:
			t.Fatalf("a forged payload opened: %+v", o)
		default:
			b, _ := json.Marshal(o.Fields)
			if want, _ := json.Marshal(adaFields()); !bytes.Equal(b, want) {
				t.Fatalf("genuine payload opened to %s", b)
			}
		}
	})
}
