package kube

import (
	"context"
	"log/slog"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// New returns a Meta over the clientset cs (in tests, a fake one), with the
// same lists and watches Open makes of its core client (the fake says it
// cannot stream a watch list; the informer factory asks it the same way).
func New(cs kubernetes.Interface, cfg Config, log *slog.Logger) *Meta {
	node := cfg.Node
	pods := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = "spec.nodeName=" + node
			return cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = "spec.nodeName=" + node
			return cs.CoreV1().Pods(metav1.NamespaceAll).Watch(ctx, o)
		},
	}, cs)
	namespaces := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return cs.CoreV1().Namespaces().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cs.CoreV1().Namespaces().Watch(ctx, o)
		},
	}, cs)
	return newMeta(pods, namespaces, cfg, log)
}
