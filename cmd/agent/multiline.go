package main

import (
	"context"
	"sync/atomic"

	"github.com/ferrylogs/ferry/pipeline/kube"
	"github.com/ferrylogs/ferry/pipeline/multiline"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// podSource is what podRuleSource needs of the Kubernetes metadata cache
// (*kube.Meta).
type podSource interface {
	Pod(ctx context.Context, k *ferryv1.Kubernetes) *ferryv1.Pod
	Synced() bool
}

// podRuleSource answers tail.Input.RuleFor from the ferry.io/multiline
// annotations of the pods in the metadata cache. Until set is called it
// does not know (followers ask again every poll interval); after set(nil)
// (no Kubernetes metadata) every pod asks for nothing.
//
// The cache keeps ferry.io/multiline and ferry.io/multiline.<container>
// whatever kubernetes.annotations lists (pipeline/kube's control
// annotations).
type podRuleSource struct {
	src atomic.Pointer[podRuleState]
}

type podRuleState struct {
	ctx  context.Context
	pods podSource // nil: no Kubernetes metadata
}

// podRules is the agent's one source, given to every container input.
var podRules podRuleSource

// set gives the metadata cache (nil for none); ctx bounds its lookups.
func (r *podRuleSource) set(ctx context.Context, m *kube.Meta) {
	st := &podRuleState{ctx: ctx}
	if m != nil {
		st.pods = m
	}
	r.src.Store(st)
}

// ruleFor is tail.Input.RuleFor: the rule the pod of k asks for, "" for
// none; ok is false while that is not known yet (no cache yet, or a pod
// not in a cache that has not listed every pod once).
func (r *podRuleSource) ruleFor(k *ferryv1.Kubernetes) (rule string, ok bool) {
	st := r.src.Load()
	switch {
	case st == nil:
		return "", false
	case st.pods == nil:
		return "", true
	}
	p := st.pods.Pod(st.ctx, k)
	if p == nil {
		return "", st.pods.Synced()
	}
	return multiline.FromAnnotations(p.GetAnnotations(), k.GetContainer()), true
}
