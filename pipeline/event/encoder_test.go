package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// randomBatch makes a batch as the aggregator sees one, in runs of events
// of one pod or file (sharing one Kubernetes struct and source strings, as
// the wire decoder makes them) and mixed: container lines of enriched and
// unenriched pods, lines of plain files, HAProxy requests with typed fields
// and GeoIP additions, node and container metrics, events without source
// or kubernetes, flags, and structs equal in content but not identity.
func randomBatch(r *rand.Rand, n int) *Batch {
	long := strings.Repeat("v", MaxMetaValueBytes+10)
	kubes := []*ferryv1.Kubernetes{
		nil,
		{},
		{PodUid: "uid-only"},
		{PodUid: "uid-only", ContainerId: "cid-9"},
		{Namespace: "shop", Pod: "web-1", PodUid: "u1", Container: "app", ContainerId: "c1"},
		{Namespace: "shop", Pod: "web-1", PodUid: "u1", Container: "app", ContainerId: "c1"}, // same content, another struct
		{Namespace: "shop", Pod: "web-1", PodUid: "u1", Container: "sidecar", ContainerId: "c2"},
		{Namespace: "shop", Pod: "web-1", PodUid: "u1"},             // a container metric
		{Namespace: "ns \"q\"\n", Pod: "pöd\u2028", Container: "x"}, // escapes
		{Namespace: "other", Pod: "db-0", Container: "db"},
		{Namespace: "only-ns"},
	}
	sealed := func(m *Meta) *Meta { m.Seal(); return m }
	metas := []*Meta{
		nil,
		sealed(&Meta{ServiceName: "web", Environment: "Prod", Cluster: "eu-1", NodeName: "api-node", OwnerKind: "Deployment", OwnerName: "web", ReplicaSet: "web-7",
			Labels: map[string]string{"app": "web", "team": "checkout"}, Images: map[string]string{"app": "reg/web:1", "sidecar": "reg/envoy:2"}}),
		sealed(&Meta{Environment: "staging", Labels: map[string]string{"big": long}}), // cut: metadata_truncated
		sealed(&Meta{}),
		{ServiceName: "unsealed"}, // written as no enrichment
	}
	paths := []string{"", "/var/log/containers/web-1_shop_app-c1.log", "/var/log/containers/db-0_other_db.log", "/var/log/\"odd\"\\path\x01.log", "/var/log/syslog"}
	inputs := []string{"", "container-0", "files-1", "syslog-0", "in\tput"}
	geo := NewAddition([]string{"source.geo"}, []byte(`,"source.geo":{"country_iso_code":"GB"}`))
	newRun := func() func(i int) (*ferryv1.Event, *Meta, *Addition) {
		k := kubes[r.IntN(len(kubes))]
		m := metas[r.IntN(len(metas))]
		path, in := paths[r.IntN(len(paths))], inputs[r.IntN(len(inputs))]
		kind := r.IntN(4) // 0, 1: a log line, 2: a metric, 3: a parsed HAProxy request
		return func(i int) (*ferryv1.Event, *Meta, *Addition) {
			e := &ferryv1.Event{
				Id:           ID(nil, "node-1", path, int64(i)),
				TimeUnixNano: time.Date(2026, 11, 25, 23, 59, 59, 0, time.UTC).UnixNano() + int64(r.IntN(3e9)),
				Message:      fmt.Appendf(nil, "line %d \"quoted\" é", i),
				Stream:       ferryv1.StreamName(r.IntN(3)),
				Kubernetes:   k,
			}
			if path != "" || in != "" {
				e.Source = &ferryv1.Source{Path: path, Input: in, Offset: int64(i) * 120}
				if r.IntN(5) == 0 {
					e.Source.Lines, e.Source.EndOffset = 3, int64(i)*120+360
				}
			}
			if r.IntN(6) == 0 {
				e.Flags = uint32(r.IntN(128))
			}
			if r.IntN(20) == 0 {
				e.OriginalTime = "10000-01-01T00:00:00Z"
			}
			var add *Addition
			switch kind {
			case 2:
				e.Kind = ferryv1.Kind_KIND_METRIC
				if r.IntN(2) == 0 {
					SetField(e, "data_stream.dataset", Str("kubernetes.container"))
				}
				SetField(e, "system.cpu.total.pct", Float(r.Float64()))
			case 3:
				e.Fields = haproxyEvent().Fields
				if r.IntN(3) == 0 {
					SetField(e, "data_stream.namespace", Str("Edge-"+fmt.Sprint(r.IntN(2))))
				}
				if r.IntN(2) == 0 {
					add = geo
				}
			}
			return e, m, add
		}
	}
	b := &Batch{Node: "node-1"}
	if r.IntN(4) == 0 {
		b.Node = "nöde \"2\""
	}
	enriched, added := r.IntN(3) > 0, r.IntN(2) == 0
	run := newRun()
	for i := range n {
		if r.IntN(8) == 0 {
			run = newRun()
		}
		e, m, add := run(i)
		b.Events = append(b.Events, e)
		b.Meta = append(b.Meta, m)
		b.Added = append(b.Added, add)
	}
	if !enriched {
		b.Meta = nil
	} else if r.IntN(3) == 0 {
		b.Meta = b.Meta[:r.IntN(n+1)] // shorter than the events: the rest unenriched
	}
	if !added {
		b.Added = nil
	}
	return b
}

// TestDocumentEncoderSameBytes checks that an encoder, which copies the
// parts events share, writes byte for byte what Batch.AppendDocument
// writes event by event, for random batches of every kind of event.
func TestDocumentEncoderSameBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 1))
	for round := range 300 {
		b := randomBatch(r, 1+r.IntN(200))
		ingested := time.Unix(0, time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC).UnixNano()+r.Int64N(1e12))
		enc := NewDocumentEncoder(b, ingested)
		// A sink's encoder: the data stream asked first (or not), the
		// _id given.
		sink := NewDocumentEncoder(b, ingested)
		var got, want, viaSink []byte
		for i := range b.Events {
			got = enc.Append(got[:0], i)
			want = b.AppendDocument(want[:0], i, ingested)
			if !bytes.Equal(got, want) {
				t.Fatalf("round %d, event %d: encoder wrote\n%s\nAppendDocument wrote\n%s", round, i, got, want)
			}
			if r.IntN(4) > 0 {
				if ds, want := sink.DataStream(i), b.DataStream(i); ds != want {
					t.Fatalf("round %d, event %d: encoder's data stream %s, Batch.DataStream %s", round, i, ds, want)
				}
			}
			viaSink = sink.AppendWithID(viaSink[:0], i, []byte(IDString(b.Events[i].GetId())))
			if !bytes.Equal(viaSink, want) {
				t.Fatalf("round %d, event %d: encoder with DataStream and AppendWithID wrote\n%s\nAppendDocument wrote\n%s", round, i, viaSink, want)
			}
			if !json.Valid(got) {
				t.Fatalf("round %d, event %d: invalid JSON %s", round, i, got)
			}
		}
	}
}

// TestDocumentEncoderFieldNames: the encoder reuses the order of the last
// event's typed field names only for exactly the same names; events whose
// names differ (as many, or one more or less) are sorted afresh.
func TestDocumentEncoderFieldNames(t *testing.T) {
	sets := [][]string{
		{"b", "a", "c"}, {"a", "b", "c"}, {"a", "b", "d"}, {"d", "a", "b"}, {"a", "b"}, {"a", "b", "c", "d"},
		{"c", "b", "a"}, {"http.status", "source.geo.x", "a"}, {"a"}, {"a"},
	}
	geo := NewAddition([]string{"source.geo"}, []byte(`,"source.geo":{"country_iso_code":"GB"}`))
	b := &Batch{Node: "n"}
	for i, names := range sets {
		e := &ferryv1.Event{Id: []byte{byte(i)}}
		for j, k := range names {
			SetField(e, k, Int(int64(10*i+j)))
		}
		b.Events = append(b.Events, e)
		b.Added = append(b.Added, geo)
	}
	enc := NewDocumentEncoder(b, time.Unix(1e9, 0))
	for i := range b.Events {
		got, want := enc.Append(nil, i), b.AppendDocument(nil, i, time.Unix(1e9, 0))
		if !bytes.Equal(got, want) {
			t.Fatalf("event %d: encoder wrote\n%s\nAppendDocument wrote\n%s", i, got, want)
		}
	}
}

// TestDocumentEncoderSharedParts checks that the shared parts are really
// taken from the event's own pod, file and dataset: switching between two
// pods (one enriched) and two files event by event writes each event's
// own names.
func TestDocumentEncoderSharedParts(t *testing.T) {
	a := &ferryv1.Kubernetes{Namespace: "ns-a", Pod: "pod-a", Container: "c"}
	bk := &ferryv1.Kubernetes{Namespace: "ns-b", Pod: "pod-b", Container: "c"}
	m := &Meta{Environment: "prod", ServiceName: "svc-b"}
	m.Seal()
	b := &Batch{Node: "n"}
	for i := range 6 {
		k, path, meta := a, "/a.log", (*Meta)(nil)
		if i%2 == 1 {
			k, path, meta = bk, "/b.log", m
		}
		b.Events = append(b.Events, &ferryv1.Event{Id: []byte{byte(i)}, Kubernetes: k, Source: &ferryv1.Source{Path: path, Input: "in"}})
		b.Meta = append(b.Meta, meta)
	}
	enc := NewDocumentEncoder(b, time.Unix(1e9, 0))
	for i := range b.Events {
		doc := string(enc.Append(nil, i))
		want := []string{`"pod":{"name":"pod-a"`, `"path":"/a.log"`, `"namespace":"default"`}
		if i%2 == 1 {
			want = []string{`"pod":{"name":"pod-b"`, `"path":"/b.log"`, `"namespace":"prod"`, `"service":{"name":"svc-b"`}
		}
		for _, w := range want {
			if !strings.Contains(doc, w) {
				t.Errorf("event %d: %s lacks %s", i, doc, w)
			}
		}
		if i%2 == 0 && strings.Contains(doc, "svc-b") {
			t.Errorf("event %d: %s has the other pod's enrichment", i, doc)
		}
	}
}

// TestDocumentEncoderAllocs checks that the encoder allocates per batch,
// never per event: a batch of 1,000 container lines of 20 pods costs a
// handful of allocations (the encoder's part buffers) however long it is.
func TestDocumentEncoderAllocs(t *testing.T) {
	b := containerBatch(1000, 20)
	dst := make([]byte, 0, 1<<20)
	allocs := testing.AllocsPerRun(10, func() {
		enc := NewDocumentEncoder(b, time.Now())
		out := dst[:0]
		for i := range b.Events {
			out = enc.Append(out, i)
		}
	})
	if allocs > 8 {
		t.Errorf("%v allocations for a batch of 1000 events, want at most 8", allocs)
	}
}

// containerBatch is n container lines of pods pods, in runs of one pod's
// lines as the agent sends them, enriched.
func containerBatch(n, pods int) *Batch {
	b := &Batch{Node: "node-1"}
	run := (n + pods - 1) / pods
	var k *ferryv1.Kubernetes
	var src *ferryv1.Source
	var m *Meta
	for i := range n {
		if i%run == 0 {
			p := i / run
			k = &ferryv1.Kubernetes{Namespace: "shop-prod", Pod: fmt.Sprintf("web-7d9f8c6b5-x2x%02d", p), PodUid: fmt.Sprintf("8f1c2e0f-1b2c-4d5e-9f00-%012d", p), Container: "app", ContainerId: fmt.Sprintf("containerd://%064d", p)}
			src = &ferryv1.Source{Path: fmt.Sprintf("/var/log/containers/web-7d9f8c6b5-x2x%02d_shop-prod_app-%064d.log", p, p), Input: "container-0"}
			m = benchMeta()
		}
		e := benchEvent()
		e.Kubernetes = k
		e.Source = &ferryv1.Source{Path: src.Path, Input: src.Input, Offset: int64(i) * 120}
		e.TimeUnixNano += int64(i) * 7919
		b.Events = append(b.Events, e)
		b.Meta = append(b.Meta, m)
	}
	return b
}

// BenchmarkDocumentsBatch is the documents of a batch of 1,000 container
// lines of 20 pods (enriched or not), as a sink writes them: with a
// DocumentEncoder, and event by event with Batch.AppendDocument. One op is
// the batch; ns/event and allocs/op (per batch) are the figures to read.
func BenchmarkDocumentsBatch(b *testing.B) {
	batch := containerBatch(1000, 20)
	plain := &Batch{Node: batch.Node, Events: batch.Events}
	// HAProxy requests (40 typed fields each) with their GeoIP addition.
	haproxy := &Batch{Node: "lb-1"}
	for range 1000 {
		haproxy.Events = append(haproxy.Events, haproxyEvent())
		haproxy.Added = append(haproxy.Added, geoAddition())
	}
	buf := make([]byte, 0, 4<<20)
	for _, bc := range []struct {
		name    string
		batch   *Batch
		encoder bool
	}{
		{"enriched/encoder", batch, true},
		{"enriched/append", batch, false},
		{"plain/encoder", plain, true},
		{"plain/append", plain, false},
		{"haproxy/encoder", haproxy, true},
		{"haproxy/append", haproxy, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				now := time.Now()
				enc := NewDocumentEncoder(bc.batch, now)
				buf = buf[:0]
				for i := range bc.batch.Events {
					if bc.encoder {
						buf = enc.Append(buf, i)
					} else {
						buf = bc.batch.AppendDocument(buf, i, now)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bc.batch.Events)), "ns/event")
			b.SetBytes(int64(len(buf)))
		})
	}
}

// TestEncoderTimestamp: an encoder's @timestamp, with the second copied
// from the previous event's, is appendTime's, for times in runs within one
// second, across second, day and year ends, out of order, and over the
// whole range of int64 nanoseconds.
func TestEncoderTimestamp(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var enc DocumentEncoder
	check := func(ns int64) {
		t.Helper()
		want := appendTime([]byte("x"), time.Unix(0, ns))
		if got := enc.appendTimestamp([]byte("x"), ns); !bytes.Equal(got, want) {
			t.Fatalf("appendTimestamp(%d) = %s, want %s", ns, got, want)
		}
	}
	for _, ns := range []int64{0, -1, 1, 999999999, 1e9, -1e9, -1e9 - 1, math.MaxInt64, math.MinInt64, 0, -1} {
		check(ns)
	}
	ends := []int64{
		time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC).UnixNano(),
		time.Date(2028, 2, 28, 23, 59, 59, 0, time.UTC).UnixNano(),
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC).UnixNano(),
	}
	for _, end := range ends {
		for ns := end - 3e9; ns < end+3e9; ns += r.Int64N(5e7) {
			check(ns)
		}
		for range 10000 {
			check(end + r.Int64N(4e9) - 2e9)
		}
	}
	for range 100000 {
		check(int64(r.Uint64()))
	}
}

// TestAppendBase64ID: the direct encoding of an id is
// base64.RawURLEncoding's, for ids of every byte value and of other
// lengths.
func TestAppendBase64ID(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	ids := [][]byte{nil, {}, {0}, {255, 255}, bytes.Repeat([]byte{0}, IDLen), bytes.Repeat([]byte{255}, IDLen), bytes.Repeat([]byte{0xfb}, IDLen+1)}
	for range 100000 {
		id := make([]byte, IDLen)
		for i := range id {
			id[i] = byte(r.Uint32())
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		want := "x" + base64.RawURLEncoding.EncodeToString(id)
		if got := string(appendBase64ID([]byte("x"), id)); got != want {
			t.Fatalf("appendBase64ID(%x) = %s, want %s", id, got, want)
		}
	}
}
