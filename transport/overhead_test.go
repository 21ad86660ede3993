package transport

import (
	"fmt"
	"testing"

	"github.com/ferrylogs/ferry/pipeline/tail"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// The overhead a session remembers per file is what overheadKube says for
// that file and those coordinates, however the files' chunks interleave,
// and the memory of it stays bounded.
func TestOverheadOf(t *testing.T) {
	s := &session{}
	kube := &ferryv1.Kubernetes{Namespace: "ns", Pod: "p", Container: "c"}
	other := &ferryv1.Kubernetes{Namespace: "another-namespace", Pod: "another-pod", PodUid: "0123456789", Container: "c"}
	short := &tail.File{ID: "a", Path: "/a.log", Input: "in"}
	long := &tail.File{ID: "b-0123456789abcdef", Path: "/var/log/containers/a-much-longer-path.log", Input: "container-0", Kube: kube,
		Fields: map[string]*ferryv1.Value{"data_stream.dataset": {Kind: &ferryv1.Value_Str{Str: "app"}}}}
	cases := []struct {
		f    *tail.File
		kube *ferryv1.Kubernetes
	}{
		{short, nil}, {long, kube}, {short, nil}, {long, other}, {long, kube}, {short, kube}, {long, kube},
	}
	for i, c := range cases {
		if got, want := s.overheadOf(c.f, c.kube), overheadKube(c.f, c.kube); got != want {
			t.Errorf("%d: overheadOf(%s) = %d, want %d", i, c.f.ID, got, want)
		}
	}
	for i := range 2 * maxOverheads {
		s.overheadOf(&tail.File{ID: fmt.Sprint(i)}, nil)
	}
	if len(s.ovhs) > maxOverheads {
		t.Errorf("%d overheads remembered, want at most %d", len(s.ovhs), maxOverheads)
	}
}
