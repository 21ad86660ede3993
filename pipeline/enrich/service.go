package enrich

import (
	"context"
	"strings"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Service sets service.name: the pod's label app.kubernetes.io/name, else
// app, else k8s-app, else the name of its owner when that is a Deployment,
// StatefulSet, DaemonSet or CronJob, else the pod's name with the suffixes
// its controller added stripped (see StripPodName).
type Service struct{}

// serviceLabels are the labels naming a service, first match wins.
var serviceLabels = [...]string{"app.kubernetes.io/name", "app", "k8s-app"}

// Enrich implements Stage.
func (Service) Enrich(_ context.Context, p *ferryv1.Pod, m *event.Meta) {
	m.ServiceName = ServiceName(p)
}

// ServiceName returns the service name of pod p.
func ServiceName(p *ferryv1.Pod) string {
	for _, l := range serviceLabels {
		if v := p.GetLabels()[l]; v != "" {
			return v
		}
	}
	switch p.GetOwnerKind() {
	case "Deployment", "StatefulSet", "DaemonSet", "CronJob":
		if n := p.GetOwnerName(); n != "" {
			return n
		}
	}
	return StripPodName(p.GetName(), p.GetLabels()["pod-template-hash"], p.GetNodeName())
}

// Alphabets of the names Kubernetes generates: the random suffix of a
// pod's name (5 characters of randAlphabet) and a ReplicaSet's
// pod-template-hash (the decimal hash, each digit mapped into randAlphabet,
// which gives only hashAlphabet).
const (
	randAlphabet = "bcdfghjklmnpqrstvwxz2456789"
	hashAlphabet = "456789bcdf"
)

// StripPodName returns the name of the workload of a pod named name: without
// the random suffix of a ReplicaSet's, DaemonSet's or Job's pod (web-x2x4z),
// then without a ReplicaSet's pod-template-hash (web-7d9f8c6b5-x2x4z; hash
// when known, else a segment that can only be one) or a CronJob's Job time
// (backup-28735940-abcde); a StatefulSet's ordinal (db-0); a static pod's
// node name (etcd-node-1, with node). The first segment always stays.
func StripPodName(name, hash, node string) string {
	if node != "" && len(name) > len(node)+1 && strings.HasSuffix(name, "-"+node) {
		return name[:len(name)-len(node)-1]
	}
	base, last := cutLast(name)
	switch {
	case base == "":
		return name
	case len(last) == 5 && only(last, randAlphabet):
		name = base
		base, last = cutLast(name)
		switch {
		case base == "":
		case hash != "" && last == hash:
			name = base
		case hash == "" && len(last) >= 5 && len(last) <= 10 && only(last, hashAlphabet) && strings.ContainsAny(last, "456789"):
			name = base
		case len(last) >= 8 && only(last, "0123456789"):
			name = base // a CronJob's Job: <cronjob>-<scheduled minute>
		}
	case last != "" && only(last, "0123456789"):
		name = base // a StatefulSet's ordinal
	}
	return name
}

// cutLast splits name at its last '-': ("", name) without one.
func cutLast(name string) (base, last string) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// only reports whether every byte of s is in set.
func only(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}
