// Package kube gives the agent what the Kubernetes API knows of the pods on
// its node, as the ferryv1.Pod a batch carries once per pod (Batch.pods).
//
// It is the only package that talks to the API server. Two informers
// (client-go) feed a cache: one watch of the pods of this node
// (fieldSelector spec.nodeName=<node>) and one of the namespaces; every
// lookup is served from that cache, never by an API call, so the load on the
// API server grows with the number of nodes, not with the number of lines.
// A watch that breaks is resumed by client-go's reflector with backoff; a 403
// is logged once per resource as an error that names the missing permission,
// and lines keep flowing with the coordinates of their file names.
//
// Contracts of Meta.Pod:
//   - A pod is found by uid when the file path gave one, else by namespace
//     and name. A deleted pod stays found for delete_grace after its
//     deletion, so that its last lines are still labelled.
//   - A pod not in the cache yet is waited for, once, at most Wait (2 s by
//     default) from the first time it was asked for; after a wait that ran
//     out, no pod is waited for during the next NoWaitAfterMiss (30 s), so
//     that files of pods long gone (or an API server that is down) never
//     hold the agent up for more than one wait per window.
//   - The *ferryv1.Pod returned is shared and immutable: a change of the pod
//     or of its namespace makes a new one.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Defaults of Config.
const (
	DefaultWait            = 2 * time.Second
	DefaultNoWaitAfterMiss = 30 * time.Second
)

// Config is the agent's kubernetes section, plus the node it runs on.
type Config struct {
	Enabled     string // auto|true|false ("" is auto)
	Kubeconfig  string // empty: the in-cluster service account
	Node        string // pods of this node only (spec.nodeName)
	DeleteGrace time.Duration
	Annotations []string // annotation keys kept; none by default
	// Wait bounds how long a lookup waits for a pod not in the cache yet
	// (0: DefaultWait); NoWaitAfterMiss is how long no lookup waits after
	// a wait ran out (0: DefaultNoWaitAfterMiss).
	Wait            time.Duration
	NoWaitAfterMiss time.Duration
}

// ErrOff is returned by RESTConfig when the agent runs without Kubernetes
// metadata: enabled false, or auto outside a cluster without a kubeconfig.
var ErrOff = errors.New("kubernetes metadata off")

// RESTConfig returns how to reach the API server: the kubeconfig file when
// set, else the in-cluster service account. It returns an error wrapping
// ErrOff when Kubernetes is off (enabled false, or enabled auto with neither).
func RESTConfig(cfg Config) (*rest.Config, error) {
	switch cfg.Enabled {
	case "false":
		return nil, fmt.Errorf("%w: kubernetes.enabled is false", ErrOff)
	case "", "auto", "true":
	default:
		return nil, fmt.Errorf("kubernetes.enabled: must be auto, true or false, got %q", cfg.Enabled)
	}
	if cfg.Kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubernetes.kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
		return rc, nil
	}
	rc, err := rest.InClusterConfig()
	if errors.Is(err, rest.ErrNotInCluster) && cfg.Enabled != "true" {
		return nil, fmt.Errorf("%w: not in a cluster and kubernetes.kubeconfig is empty", ErrOff)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes in-cluster configuration: %w", err)
	}
	return rc, nil
}

// Open starts watching the API server cfg leads to. It returns nil, nil and
// logs one INFO line when Kubernetes is off (see RESTConfig); with enabled
// auto, a configuration that cannot be loaded is a warning and the agent
// goes on without metadata; with enabled true it is an error. The watches
// run until ctx ends.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Meta, error) {
	rc, err := RESTConfig(cfg)
	switch {
	case errors.Is(err, ErrOff):
		log.Info("running without Kubernetes metadata: events carry the coordinates of their file names only", "reason", err)
		return nil, nil
	case err != nil && cfg.Enabled != "true":
		log.Warn("running without Kubernetes metadata", "err", err)
		return nil, nil
	case err != nil:
		return nil, err
	}
	rc.UserAgent = "ferry-agent"
	core, err := coreClient(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	// client-go logs through klog; route it to our logger, quietly.
	klog.SetSlogLogger(log.With("component", "client-go"))
	node := cfg.Node
	m := newMeta(
		cache.NewFilteredListWatchFromClient(core, "pods", metav1.NamespaceAll, func(o *metav1.ListOptions) {
			o.FieldSelector = "spec.nodeName=" + node
		}),
		cache.NewListWatchFromClient(core, "namespaces", metav1.NamespaceAll, fields.Everything()),
		cfg, log)
	m.user = rc.Username
	if rc.BearerToken != "" || rc.BearerTokenFile != "" {
		m.user = "" // learnt from the 403 message
	}
	m.Start(ctx)
	log.Info("watching the Kubernetes API for pod metadata", "host", rc.Host, "node", cfg.Node,
		"delete_grace", cfg.DeleteGrace, "annotations", cfg.Annotations)
	return m, nil
}

// Meta is the cache of pod and namespace metadata of one node.
type Meta struct {
	cfg   Config
	log   *slog.Logger
	user  string
	allow map[string]bool // annotation keys kept

	podInf, nsInf cache.SharedIndexInformer

	mu      sync.Mutex
	changed chan struct{}          // closed and replaced when a pod arrives or changes
	deleted map[string]*deletedPod // by uid, within delete_grace
	byName  map[string]string      // namespace/name of a deleted pod -> uid
	built   map[string]*builtPod   // by uid
	unknown map[string]time.Time   // lookup key -> first asked for, not found
	noWait  time.Time              // no waiting before this
	forbid  map[string]bool        // resources whose 403 was logged
	failing map[string]time.Time   // resource -> last warning about it

	lookups, misses, waits, watchErrors atomic.Uint64
}

type deletedPod struct {
	pod   *corev1.Pod
	until time.Time
}

type builtPod struct {
	podRV, nsRV string
	pod         *ferryv1.Pod
}

const uidIndex = "uid"

// coreClient returns a REST client of the core API group (v1) only. The
// typed clientset and its informer factory would do the same, but they
// link every API group of Kubernetes into the agent (some 50 packages,
// whose initialisation alone maps about 20 MiB of the binary into memory
// at start, whether or not Kubernetes is on); pods and namespaces need
// none of them.
func coreClient(rc *rest.Config) (*rest.RESTClient, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c := *rc
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientFor(&c)
}

// newMeta returns a Meta over the list and watch of the node's pods and of
// the namespaces; Start begins the watches.
func newMeta(pods, namespaces cache.ListerWatcher, cfg Config, log *slog.Logger) *Meta {
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	if cfg.NoWaitAfterMiss <= 0 {
		cfg.NoWaitAfterMiss = DefaultNoWaitAfterMiss
	}
	m := &Meta{
		cfg:     cfg,
		log:     log,
		allow:   map[string]bool{},
		changed: make(chan struct{}),
		deleted: map[string]*deletedPod{},
		byName:  map[string]string{},
		built:   map[string]*builtPod{},
		unknown: map[string]time.Time{},
		forbid:  map[string]bool{},
		failing: map[string]time.Time{},
	}
	for _, a := range cfg.Annotations {
		m.allow[a] = true
	}
	byNamespace := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
	m.podInf = cache.NewSharedIndexInformer(pods, &corev1.Pod{}, 0, byNamespace)
	m.nsInf = cache.NewSharedIndexInformer(namespaces, &corev1.Namespace{}, 0, cache.Indexers{})
	_ = m.podInf.AddIndexers(cache.Indexers{uidIndex: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok {
			return []string{string(p.UID)}, nil
		}
		return nil, nil
	}})
	_ = m.podInf.SetTransform(m.trimPod)
	_ = m.nsInf.SetTransform(trimNamespace)
	_ = m.podInf.SetWatchErrorHandlerWithContext(m.watchError("pods"))
	_ = m.nsInf.SetWatchErrorHandlerWithContext(m.watchError("namespaces"))
	_, _ = m.podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { m.notify() },
		UpdateFunc: func(any, any) { m.notify() },
		DeleteFunc: m.onDelete,
	})
	_, _ = m.nsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { m.notify() },
		UpdateFunc: func(any, any) { m.notify() },
	})
	return m
}

// Start runs the watches until ctx ends. It does not wait for them to sync:
// lookups wait (see Pod).
func (m *Meta) Start(ctx context.Context) {
	go m.podInf.RunWithContext(ctx)
	go m.nsInf.RunWithContext(ctx)
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), m.podInf.HasSynced, m.nsInf.HasSynced) {
			m.notify()
			m.log.Info("Kubernetes metadata cache synced", "pods", len(m.podInf.GetStore().ListKeys()),
				"namespaces", len(m.nsInf.GetStore().ListKeys()))
		}
	}()
}

// Synced reports whether both watches have listed once.
func (m *Meta) Synced() bool { return m.podInf.HasSynced() && m.nsInf.HasSynced() }

// Counters returns the self-metrics of the cache by name.
func (m *Meta) Counters() map[string]uint64 {
	m.mu.Lock()
	deleted := len(m.deleted)
	m.mu.Unlock()
	return map[string]uint64{
		"ferry_agent_kube_pods_cached":          uint64(len(m.podInf.GetStore().ListKeys())),
		"ferry_agent_kube_pods_deleted_kept":    uint64(deleted),
		"ferry_agent_kube_namespaces_cached":    uint64(len(m.nsInf.GetStore().ListKeys())),
		"ferry_agent_kube_lookups_total":        m.lookups.Load(),
		"ferry_agent_kube_lookups_missed_total": m.misses.Load(),
		"ferry_agent_kube_waits_total":          m.waits.Load(),
		"ferry_agent_kube_watch_errors_total":   m.watchErrors.Load(),
	}
}

// watchError logs a broken list or watch of resource: a 403 once, as an
// error naming the permission to grant; anything else as a warning at most
// once a minute. The reflector retries with backoff either way.
func (m *Meta) watchError(resource string) cache.WatchErrorHandlerWithContext {
	return func(ctx context.Context, r *cache.Reflector, err error) {
		m.watchErrors.Add(1)
		if apierrors.IsForbidden(err) {
			m.mu.Lock()
			logged := m.forbid[resource]
			m.forbid[resource] = true
			m.mu.Unlock()
			if !logged {
				m.log.Error(forbiddenMessage(resource, m.user, err), "err", err)
			}
			return
		}
		if errors.Is(err, context.Canceled) || ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		last := m.failing[resource]
		now := time.Now()
		due := now.Sub(last) >= time.Minute
		if due {
			m.failing[resource] = now
		}
		m.mu.Unlock()
		if due {
			m.log.Warn("watch of "+resource+" broken; retrying with backoff, lines keep flowing with the metadata cached", "err", err)
		}
	}
}

// forbiddenMessage names the missing permission and who lacks it, from
// the API server's message ("User \"system:serviceaccount:ns:sa\" cannot
// list resource \"namespaces\" ...") when the configuration did not say.
func forbiddenMessage(resource, user string, err error) string {
	verb := "list"
	msg := err.Error()
	if i := strings.Index(msg, "User \""); i >= 0 {
		rest := msg[i+len("User \""):]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			user = rest[:j]
			rest = rest[j+1:]
		}
		if f := strings.Fields(rest); len(f) >= 2 && f[0] == "cannot" {
			verb = f[1]
		}
	}
	if user == "" {
		user = "the agent's credentials"
	}
	return fmt.Sprintf("%s %s is forbidden for %s: grant get/list/watch on %s (ClusterRole rule: apiGroups [\"\"], resources [%s], verbs [get, list, watch]); "+
		"until then events carry the coordinates of their file names only", verb, resource, user, resource, resource)
}

// notify wakes every lookup waiting for a pod.
func (m *Meta) notify() {
	m.mu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

func (m *Meta) onDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if m.cfg.DeleteGrace <= 0 {
		delete(m.built, string(p.UID))
		return
	}
	m.deleted[string(p.UID)] = &deletedPod{pod: p, until: now.Add(m.cfg.DeleteGrace)}
	m.byName[p.Namespace+"/"+p.Name] = string(p.UID)
}

// sweep forgets deleted pods whose grace is over. m.mu is held.
func (m *Meta) sweep(now time.Time) {
	for uid, d := range m.deleted {
		if now.After(d.until) {
			delete(m.deleted, uid)
			delete(m.built, uid)
			if m.byName[d.pod.Namespace+"/"+d.pod.Name] == uid {
				delete(m.byName, d.pod.Namespace+"/"+d.pod.Name)
			}
		}
	}
}

// Pod returns the metadata of the pod whose file coordinates are k, or nil
// when there is none (not a pod, never seen, deleted longer ago than
// delete_grace). It may wait, see the package doc; it returns at once when
// ctx ends.
func (m *Meta) Pod(ctx context.Context, k *ferryv1.Kubernetes) *ferryv1.Pod {
	if k == nil || (k.PodUid == "" && (k.Namespace == "" || k.Pod == "")) {
		return nil
	}
	m.lookups.Add(1)
	key := k.PodUid
	if key == "" {
		key = k.Namespace + "/" + k.Pod
	}
	waited := false
	for {
		m.mu.Lock()
		p := m.find(k)
		if p != nil {
			delete(m.unknown, key)
			out := m.build(p)
			m.mu.Unlock()
			return out
		}
		now := time.Now()
		first, seen := m.unknown[key]
		if !seen {
			if len(m.unknown) >= 1<<14 {
				clear(m.unknown) // files of pods long gone; forget, bounded
			}
			first = now
			m.unknown[key] = now
		}
		deadline := first.Add(m.cfg.Wait)
		if !now.Before(deadline) || now.Before(m.noWait) {
			m.mu.Unlock()
			m.misses.Add(1)
			return nil
		}
		changed := m.changed
		m.mu.Unlock()
		if !waited {
			waited = true
			m.waits.Add(1)
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-changed:
			t.Stop()
		case <-t.C:
			m.mu.Lock()
			if p := m.find(k); p != nil {
				delete(m.unknown, key)
				out := m.build(p)
				m.mu.Unlock()
				return out
			}
			m.noWait = time.Now().Add(m.cfg.NoWaitAfterMiss)
			m.mu.Unlock()
			m.misses.Add(1)
			m.log.Debug("no Kubernetes metadata for a pod: its lines go with their file-name coordinates",
				"namespace", k.Namespace, "pod", k.Pod, "uid", k.PodUid, "waited", m.cfg.Wait)
			return nil
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

// find returns the cached pod of k, live or deleted within its grace.
// m.mu is held.
func (m *Meta) find(k *ferryv1.Kubernetes) *corev1.Pod {
	now := time.Now()
	if k.PodUid != "" {
		if objs, err := m.podInf.GetIndexer().ByIndex(uidIndex, k.PodUid); err == nil && len(objs) > 0 {
			return objs[0].(*corev1.Pod)
		}
		if d := m.deleted[k.PodUid]; d != nil && now.Before(d.until) {
			return d.pod
		}
		return nil
	}
	if obj, ok, _ := m.podInf.GetIndexer().GetByKey(k.Namespace + "/" + k.Pod); ok {
		return obj.(*corev1.Pod)
	}
	if uid, ok := m.byName[k.Namespace+"/"+k.Pod]; ok {
		if d := m.deleted[uid]; d != nil && now.Before(d.until) {
			return d.pod
		}
	}
	return nil
}

// build returns the wire form of p with its namespace's labels, made again
// only when the pod or its namespace changed. m.mu is held.
func (m *Meta) build(p *corev1.Pod) *ferryv1.Pod {
	var nsLabels map[string]string
	nsRV := ""
	if obj, ok, _ := m.nsInf.GetIndexer().GetByKey(p.Namespace); ok {
		ns := obj.(*corev1.Namespace)
		nsLabels, nsRV = ns.Labels, ns.ResourceVersion
	}
	uid := string(p.UID)
	if b := m.built[uid]; b != nil && b.podRV == p.ResourceVersion && b.nsRV == nsRV {
		return b.pod
	}
	out := PodProto(p, nsLabels)
	m.built[uid] = &builtPod{podRV: p.ResourceVersion, nsRV: nsRV, pod: out}
	if len(m.built) > 2*len(m.podInf.GetStore().ListKeys())+len(m.deleted)+64 {
		m.pruneBuilt()
	}
	return out
}

// pruneBuilt forgets the wire form of pods no longer cached. m.mu is held.
func (m *Meta) pruneBuilt() {
	for uid := range m.built {
		if _, ok := m.deleted[uid]; ok {
			continue
		}
		if objs, _ := m.podInf.GetIndexer().ByIndex(uidIndex, uid); len(objs) == 0 {
			delete(m.built, uid)
		}
	}
}

// PodProto is the wire form of p (annotations as filtered by the cache)
// with its namespace's labels.
func PodProto(p *corev1.Pod, nsLabels map[string]string) *ferryv1.Pod {
	out := &ferryv1.Pod{
		Uid:             string(p.UID),
		Namespace:       p.Namespace,
		Name:            p.Name,
		NodeName:        p.Spec.NodeName,
		Labels:          copyMap(p.Labels),
		Annotations:     copyMap(p.Annotations),
		NamespaceLabels: copyMap(nsLabels),
	}
	out.OwnerKind, out.OwnerName = Owner(p)
	if n := len(p.Spec.Containers) + len(p.Spec.InitContainers); n > 0 {
		out.ContainerImages = make(map[string]string, n)
		for _, c := range p.Spec.InitContainers {
			out.ContainerImages[c.Name] = c.Image
		}
		for _, c := range p.Spec.Containers {
			out.ContainerImages[c.Name] = c.Image
		}
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// controlAnnotation reports whether k is one of Ferry's own annotations,
// which steer the agent (ferry.io/multiline, ferry.io/multiline.<container>)
// and are kept whether or not kubernetes.annotations lists them.
func controlAnnotation(k string) bool {
	const ml = "ferry.io/multiline"
	return k == ml || (len(k) > len(ml)+1 && k[:len(ml)+1] == ml+".")
}

// trimPod keeps what PodProto needs, and of the annotations only the
// allowed keys and Ferry's control annotations, so that the cache holds
// little per pod.
func (m *Meta) trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Labels: p.Labels, OwnerReferences: p.OwnerReferences,
		},
		Spec: corev1.PodSpec{NodeName: p.Spec.NodeName},
	}
	for k, v := range p.Annotations {
		if m.allow[k] || controlAnnotation(k) {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[k] = v
		}
	}
	for _, c := range p.Spec.InitContainers {
		out.Spec.InitContainers = append(out.Spec.InitContainers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	for _, c := range p.Spec.Containers {
		out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	return out, nil
}

func trimNamespace(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion, Labels: ns.Labels}}, nil
}
