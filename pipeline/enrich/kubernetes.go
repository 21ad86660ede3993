package enrich

import (
	"context"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Kubernetes copies what the API server knows of a pod into the document:
// labels, annotations, namespace labels, owner (and the ReplicaSet or Job
// between it and the pod, when the pod's labels name them), node and images,
// and the cluster name of orchestrator.cluster.name.
type Kubernetes struct {
	Cluster string // orchestrator.cluster.name; empty: not written
}

// Enrich implements Stage.
func (s Kubernetes) Enrich(_ context.Context, p *ferryv1.Pod, m *event.Meta) {
	m.Cluster = s.Cluster
	m.NodeName = p.GetNodeName()
	m.Labels = p.GetLabels()
	m.NamespaceLabels = p.GetNamespaceLabels()
	m.Annotations = p.GetAnnotations()
	m.Images = p.GetContainerImages()
	m.OwnerKind, m.OwnerName = p.GetOwnerKind(), p.GetOwnerName()
	switch m.OwnerKind {
	case "Deployment":
		// The ReplicaSet a Deployment made is <deployment>-<pod-template-hash>.
		if h := m.Labels["pod-template-hash"]; h != "" && m.OwnerName != "" {
			m.ReplicaSet = m.OwnerName + "-" + h
		}
	case "CronJob", "Job":
		// The Job controller labels its pods with the Job's name.
		m.Job = m.Labels["batch.kubernetes.io/job-name"]
		if m.Job == "" {
			m.Job = m.Labels["job-name"]
		}
	}
}
