package parse

import (
	"reflect"
	"testing"
)

// Append's results (a slice, Header, a bool, an error) must fit the nine
// result registers of Go's register ABI: with a Header of seven fields they
// went through memory at every layer and parsing a CRI line got a quarter
// slower. A field of Header takes a register; keep them to three.
func TestHeaderFitsInRegisters(t *testing.T) {
	typ := reflect.TypeOf(Header{})
	if n := typ.NumField(); n > 3 {
		t.Fatalf("Header has %d fields; with Append's other results it no longer fits in registers", n)
	}
	for i := range typ.NumField() {
		switch k := typ.Field(i).Type.Kind(); k {
		case reflect.Int64, reflect.Int32, reflect.Uint64, reflect.Uint32, reflect.Bool:
		default:
			t.Errorf("Header.%s is a %v, not one register", typ.Field(i).Name, k)
		}
	}
}

// The packed flags round-trip, and a time text far into a long line keeps
// its offset.
func TestHeaderBits(t *testing.T) {
	var h Header
	h.setPartial(true)
	h.outOfRange(1<<30, 1<<30+200)
	if s, e := h.TimeText(); !h.TimeOutOfRange() || h.HasTime() || !h.Partial() || s != 1<<30 || e != 1<<30+MaxTimeText || h.Time != 0 {
		t.Fatalf("out of range: %+v [%d:%d]", h, s, e)
	}
	h.setTime(0)
	if s, e := h.TimeText(); h.TimeOutOfRange() || !h.HasTime() || !h.Partial() || s != 0 || e != 0 {
		t.Fatalf("epoch: %+v [%d:%d]", h, s, e)
	}
	h.setPartial(false)
	if h.Partial() || !h.HasTime() {
		t.Fatalf("not partial: %+v", h)
	}
}
