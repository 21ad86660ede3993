package main

import (
	"context"
	"testing"

	"github.com/ferrylogs/ferry/config"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

type fakePods struct {
	pods   map[string]*ferryv1.Pod // by pod name
	synced bool
}

func (f *fakePods) Pod(_ context.Context, k *ferryv1.Kubernetes) *ferryv1.Pod {
	return f.pods[k.GetPod()]
}
func (f *fakePods) Synced() bool { return f.synced }

// TestPodRules: the rule comes from the pod's annotations, per container
// first; not known before the cache is given, nor for a pod missing from a
// cache that has not synced; nothing asked without Kubernetes metadata.
func TestPodRules(t *testing.T) {
	var r podRuleSource
	web := &ferryv1.Kubernetes{Namespace: "prod", Pod: "web-1", Container: "app"}
	worker := &ferryv1.Kubernetes{Namespace: "prod", Pod: "web-1", Container: "worker"}
	other := &ferryv1.Kubernetes{Namespace: "prod", Pod: "db-0", Container: "db"}
	if rule, ok := r.ruleFor(web); ok || rule != "" {
		t.Fatalf("before set: %q, %v", rule, ok)
	}
	pods := &fakePods{pods: map[string]*ferryv1.Pod{"web-1": {Name: "web-1", Annotations: map[string]string{
		"ferry.io/multiline": "java", "ferry.io/multiline.worker": "python"}}}}
	r.src.Store(&podRuleState{ctx: context.Background(), pods: pods})
	for _, tc := range []struct {
		k      *ferryv1.Kubernetes
		synced bool
		rule   string
		ok     bool
	}{
		{web, false, "java", true},
		{worker, false, "python", true},
		{other, false, "", false},
		{other, true, "", true},
	} {
		pods.synced = tc.synced
		if rule, ok := r.ruleFor(tc.k); rule != tc.rule || ok != tc.ok {
			t.Errorf("%s/%s (synced %v): %q, %v; want %q, %v", tc.k.Pod, tc.k.Container, tc.synced, rule, ok, tc.rule, tc.ok)
		}
	}
	r.set(context.Background(), nil)
	if rule, ok := r.ruleFor(web); !ok || rule != "" {
		t.Fatalf("without Kubernetes: %q, %v", rule, ok)
	}
}

// TestTailInputsRuleFor: container inputs ask the pods; file inputs do not.
func TestTailInputsRuleFor(t *testing.T) {
	ins, err := tailInputs([]config.Input{
		{Name: "c", Type: "container", Multiline: config.Multiline{Rule: "none", MaxLines: 500, MaxBytes: config.KiB * 256}},
		{Name: "f", Type: "file", Multiline: config.Multiline{Rule: "java", MaxLines: 500, MaxBytes: config.KiB * 256}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ins[0].RuleFor == nil || ins[1].RuleFor != nil || ins[0].Multiline != nil || ins[1].Multiline.Rule() != "java" {
		t.Fatalf("inputs %+v", ins)
	}
}
