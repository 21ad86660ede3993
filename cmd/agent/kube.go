package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/pipeline/kube"
	"github.com/ferrylogs/ferry/pipeline/metrics"
	"github.com/ferrylogs/ferry/transport"
)

// kubeMeta starts watching the Kubernetes API for the pods of this node
// (kubernetes.*), until ctx ends. It returns nil when the agent runs
// without Kubernetes metadata (then Open has said so, once).
func kubeMeta(ctx context.Context, cfg *config.Agent, log *slog.Logger) (*kube.Meta, error) {
	k := cfg.Kubernetes
	return kube.Open(ctx, kube.Config{
		Enabled:     k.Enabled,
		Kubeconfig:  k.Kubeconfig,
		Node:        cfg.Node,
		DeleteGrace: time.Duration(k.DeleteGrace),
		Annotations: k.Annotations,
	}, log)
}

// podMeta and podNamer return m as the client's and the sampler's source
// of pod metadata: an untyped nil when m is nil.
func podMeta(m *kube.Meta) transport.PodMeta {
	if m == nil {
		return nil
	}
	return m
}

func podNamer(m *kube.Meta) metrics.PodNamer {
	if m == nil {
		return nil
	}
	return m
}
