package main

import "testing"

func TestStampOf(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want int64
		ok   bool
	}{
		{"stamp=1796044894558660077 seq=0 probe GET /", 1796044894558660077, true},
		{"stamp=12 seq=1", 12, true},
		{"stamp=12", 12, true},
		{"seq=3 stamp=12", 0, false},
		{"stamp=x seq=1", 0, false},
		{"", 0, false},
	} {
		got, ok := stampOf(tc.msg)
		if got != tc.want || ok != tc.ok {
			t.Errorf("stampOf(%q) = %d, %v; want %d, %v", tc.msg, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHistQuantile(t *testing.T) {
	before := hist{le: []string{"0.25", "1", "+Inf"}, counts: []float64{10, 10, 10}}
	for _, tc := range []struct {
		name  string
		after []float64
		q     float64
		want  string
	}{
		{"all in the first bucket", []float64{110, 110, 110}, 0.99, "<=0.25s"},
		{"p50 first, p99 second", []float64{70, 110, 110}, 0.5, "<=0.25s"},
		{"p99 in the second", []float64{70, 110, 110}, 0.99, "<=1s"},
		{"beyond the last bound", []float64{10, 10, 110}, 0.5, "<=+Infs"},
		{"nothing new", []float64{10, 10, 10}, 0.5, "n/a"},
	} {
		after := hist{le: before.le, counts: tc.after}
		if got := after.minus(before).quantile(tc.q); got != tc.want {
			t.Errorf("%s: quantile(%g) = %s, want %s", tc.name, tc.q, got, tc.want)
		}
	}
}

func TestBoolQFlattens(t *testing.T) {
	q := boolQ(boolQ(term("a", "1"), term("b", "2")), exists("c"))
	f := q["bool"].(map[string]any)["filter"].([]any)
	if len(f) != 3 {
		t.Fatalf("boolQ of a boolQ and a term: %d filters, want 3: %v", len(f), q)
	}
}
