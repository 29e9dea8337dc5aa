package schemas

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"testing"
)

func TestSplitWire(t *testing.T) {
	tests := []struct {
		name   string
		wire   []byte
		id     int
		body   string
		failed bool
	}{
		{"empty", nil, 0, "", true},
		{"short", []byte{0, 0, 0, 1}, 0, "", true},
		{"bad magic", []byte{1, 0, 0, 0, 1, 2}, 0, "", true},
		{"header only", []byte{0, 0, 0, 0, 9}, 9, "", false},
		{"max id", []byte{0, 0xff, 0xff, 0xff, 0xff, 'x'}, math.MaxUint32, "x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, body, err := SplitWire(tt.wire)
			if tt.failed {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || id != tt.id || string(body) != tt.body {
				t.Errorf("= %d, %q, %v", id, body, err)
			}
		})
	}
}

// hostileFields is a valid encoding of testdata/hostile.avsc's row, one
// slice per field, for the cases below to corrupt one field at a time.
func hostileFields() [][]byte {
	return [][]byte{
		{0},          // s ""
		{0},          // b ""
		{0},          // longs []
		{0},          // nulls []
		{0},          // grid []
		{0},          // tags {}
		{0},          // choice null
		{0},          // list null
		{0},          // colour RED
		{1, 2, 3, 4}, // digest
		{0},          // price, empty bytes
		{0, 0, 0x80, 0x3f},
		{0, 0, 0, 0, 0, 0, 0xf0, 0x3f},
		{1}, // ok
		{0}, // day
	}
}

var hostileMeta = Meta{ValidFrom: 1, SystemFrom: 2}

func hostileWire(id int, fields [][]byte) []byte {
	wire := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(wire[1:], uint32(id))
	return appendMeta(append(wire, bytes.Join(fields, nil)...), hostileMeta)
}

func zz(vs ...int64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.AppendVarint(b, v)
	}
	return b
}

// hostileCases are events a producer could craft to make a naive decoder
// allocate gigabytes, spin, panic or overflow its stack.
func hostileCases(id int) map[string][]byte {
	with := func(i int, b []byte) []byte {
		fs := hostileFields()
		fs[i] = b
		return hostileWire(id, fs)
	}
	grid := zz(50_000)
	for range 50_000 {
		grid = append(grid, zz(50_000, 0)...) // 2.5e9 nulls from 200 kB
	}
	grid = append(grid, 0)
	list := []byte{}
	for range 10_000 {
		list = append(list, zz(1, 0)...) // branch Node, v=0, then next...
	}
	list = append(list, 0)
	good := hostileWire(id, hostileFields())
	return map[string][]byte{
		"string of 2 GiB":             with(0, zz(1<<31)),
		"bytes of 2 GiB":              with(1, append(zz(1<<31), "abc"...)),
		"negative string length":      with(0, zz(-5)),
		"1e9 longs":                   with(2, zz(1e9)),
		"1e9 longs in a sized block":  with(2, append(zz(-1e9, 8), make([]byte, 8)...)),
		"1e9 nulls":                   with(3, zz(1e9, 0)),
		"min int64 block count":       with(3, zz(math.MinInt64, 0, 0)),
		"2.5e9 nulls in nested array": with(4, grid),
		"1e9 map entries":             with(5, zz(1e9)),
		"union branch out of range":   with(6, zz(7)),
		"10k nested records":          with(7, list),
		"enum index out of range":     with(8, zz(2)),
		"varint overflow":             with(2, bytes.Repeat([]byte{0xff}, 11)),
		"int out of range":            with(14, zz(math.MaxInt32+1)),
		"truncated":                   good[:len(good)-1],
		"trailing byte":               append(bytes.Clone(good), 0),
		"boolean byte 2":              with(13, []byte{2}),
	}
}

func registerHostile(t testing.TB) (*Registry, int) {
	t.Helper()
	r := startRegistry(t)
	s, err := Load("testdata/hostile.avsc")
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.Register(context.Background(), "hostile-value", s, CompatBackward)
	if err != nil {
		t.Fatal(err)
	}
	return r, id
}

type hostileNode struct {
	V    int32        `avro:"v"`
	Next *hostileNode `avro:"next"`
}

// hostileRow leaves fields out on purpose, so decoding also exercises
// hamba's skip path. It must hold the null-carrying fields, though: hamba
// cannot skip a bare null (array<null>, map<null>) and fails the decode
// (found by FuzzDecode, testdata/fuzz/FuzzDecode/146520ec771ed735).
type hostileRow struct {
	S      string               `avro:"s"`
	Longs  []int64              `avro:"longs"`
	Nulls  []*struct{}          `avro:"nulls"`
	Grid   [][]*struct{}        `avro:"grid"`
	Tags   map[string]*struct{} `avro:"tags"`
	Choice any                  `avro:"choice"`
	List   *hostileNode         `avro:"list"`
	Colour string               `avro:"colour"`
	OK     bool                 `avro:"ok"`
}

func TestHardenedDecode(t *testing.T) {
	ctx := context.Background()
	r, id := registerHostile(t)

	// The valid event decodes (and warms the schema cache).
	good := hostileWire(id, hostileFields())
	if _, m, err := r.DecodeMap(ctx, good); err != nil || m["ok"] != true {
		t.Fatalf("valid event: %v, %v", m, err)
	}
	var row hostileRow
	if _, meta, err := r.Decode(ctx, good, &row); err != nil || meta != hostileMeta || !row.OK {
		t.Fatalf("valid event: %+v, %+v, %v", row, meta, err)
	}

	for name, wire := range hostileCases(id) {
		t.Run(name, func(t *testing.T) {
			_, _, err := r.DecodeMap(ctx, wire)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeMap err = %v, want ErrMalformed", err)
			}
			t.Log(err)
			var row hostileRow
			if _, _, err := r.Decode(ctx, wire, &row); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode err = %v, want ErrMalformed", err)
			}
			perRun := allocatedBytes(10, func() {
				_, _, _ = r.DecodeMap(ctx, wire)
				_, _, _ = r.Decode(ctx, wire, &row)
			})
			if perRun > 64<<10 {
				t.Errorf("decoding allocated %d bytes per run", perRun)
			}
		})
	}
}

// TestCodecLimits checks the second line of defence: hamba, configured
// with the package limits, refuses huge lengths even without the walk.
func TestCodecLimits(t *testing.T) {
	s, err := Load("testdata/hostile.avsc")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"string of 2 GiB", "bytes of 2 GiB", "1e9 longs", "1e9 nulls"} {
		body := hostileCases(1)[name][headerSize:]
		var err error
		perRun := allocatedBytes(10, func() {
			m := map[string]any{}
			err = unmarshal(s.pub, body, &m)
		})
		if err == nil {
			t.Errorf("%s: hamba decoded it", name)
		}
		if perRun > 64<<10 {
			t.Errorf("%s: hamba allocated %d bytes per run", name, perRun)
		}
	}
}

func allocatedBytes(runs int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// FuzzDecode feeds arbitrary wire bytes to the decoders with a fixed schema
// covering every Avro type. Beyond "never panics" it checks the walk and
// hamba agree: what the walk accepts, hamba decodes.
func FuzzDecode(f *testing.F) {
	s, err := Load("testdata/hostile.avsc")
	if err != nil {
		f.Fatal(err)
	}
	w, err := newWriter(1, s.pub)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(hostileWire(1, hostileFields()))
	fs := hostileFields()
	fs[0], fs[2], fs[6], fs[7] = zz(3, 'a', 'b', 'c'), zz(-2, 2, 5, 6, 0), zz(2, 9), zz(1, 4, 1, 8, 0)
	f.Add(hostileWire(1, fs))
	for name, wire := range hostileCases(1) {
		if len(wire) < 4096 {
			f.Add(wire)
		}
		_ = name
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		_, body, err := SplitWire(wire)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("SplitWire: unclassified error %v", err)
			}
			return
		}
		_, walkErr := walkBody(w.shape, body, 0)
		m, mapErr := w.decodeMap(body)
		var row hostileRow
		meta, rowErr := w.decodeRow(body, &row)
		if walkErr != nil {
			if !errors.Is(mapErr, ErrMalformed) || !errors.Is(rowErr, ErrMalformed) {
				t.Fatalf("walk refused (%v) but decoders said %v / %v", walkErr, mapErr, rowErr)
			}
			return
		}
		if mapErr != nil || rowErr != nil {
			t.Fatalf("walk accepted but decoders said %v / %v", mapErr, rowErr)
		}
		if m["ok"] != row.OK || m["_deleted"] != meta.Deleted {
			t.Fatalf("map and struct decoders disagree: %v vs %+v %+v", m, row, meta)
		}
	})
}
