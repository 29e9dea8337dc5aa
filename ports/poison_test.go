package ports

import (
	"errors"
	"fmt"
	"testing"
)

func TestClassNamesRoundTrip(t *testing.T) {
	for c := ClassMalformed; c <= ClassTooLarge; c++ {
		got, ok := ParseClass(c.String())
		if !ok || got != c {
			t.Errorf("ParseClass(%q) = %v, %v; want %v", c.String(), got, ok, c)
		}
	}
	if _, ok := ParseClass("duplicate"); ok {
		t.Error(`"duplicate" parsed as a dead-letter class; a re-sent event is a result, not a dead letter`)
	}
	if s := Class(200).String(); s != "class(200)" {
		t.Errorf("unknown class prints %q", s)
	}
}

func TestPoisonIsFoundThroughWrapping(t *testing.T) {
	cause := errors.New("no such column")
	err := fmt.Errorf("event 7: %w", Poisoned(ClassHandler, cause))
	p, ok := AsPoison(err)
	if !ok || p.Class != ClassHandler || !errors.Is(err, cause) {
		t.Fatalf("AsPoison(%v) = %v, %v", err, p, ok)
	}
	if _, ok := AsPoison(cause); ok {
		t.Fatal("a plain error is not poison")
	}
}
