package cdc

import "unsafe"

// keeper hands out the memory that decoded changes keep, their images and
// their strings, from chunks shared by many changes, so that a change
// costs no allocation of its own: one chunk serves dozens of messages. A
// handed-out part is never written again; a chunk that runs out is
// replaced, not grown, so what was handed out stays valid. A chunk is
// freed once no change that uses it is reachable.
//
// A keeper lives in a pooled scratch, so each decode has one to itself.
type keeper struct {
	bytes []byte // images and keys
	text  []byte // strings; only ever read through the strings made of it
	txs   []Tx
}

const (
	bytesChunk = 16 << 10
	textChunk  = 2 << 10
	txChunk    = 32
)

// tx returns a zero Tx of its own.
func (k *keeper) tx() *Tx {
	if len(k.txs) == 0 {
		k.txs = make([]Tx, txChunk)
	}
	t := &k.txs[0]
	k.txs = k.txs[1:]
	return t
}

// take returns an empty slice with room for exactly n bytes. Parts bigger
// than a quarter chunk get memory of their own, so one big message does
// not waste a chunk or pin a neighbour's.
func (k *keeper) take(n int) []byte {
	return carve(&k.bytes, n, bytesChunk)
}

// keepString copies b and returns it as a string.
func (k *keeper) keepString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	kept := append(carve(&k.text, len(b), textChunk), b...)
	return unsafe.String(&kept[0], len(kept))
}

func carve(chunk *[]byte, n, size int) []byte {
	if n > size/4 {
		return make([]byte, 0, n)
	}
	c := *chunk
	if cap(c)-len(c) < n {
		c = make([]byte, 0, size)
	}
	l := len(c)
	*chunk = c[:l+n]
	return c[l : l : l+n]
}
