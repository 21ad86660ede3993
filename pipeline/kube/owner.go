package kube

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Owner returns the controller of p, resolved one step further where the
// name shows it: a ReplicaSet named <deployment>-<pod-template-hash> gives
// that Deployment, a Job named <cronjob>-<scheduled minute> gives that
// CronJob. Without an owner reference it returns "", "".
func Owner(p *corev1.Pod) (kind, name string) {
	refs := p.OwnerReferences
	if len(refs) == 0 {
		return "", ""
	}
	ref := refs[0]
	for _, r := range refs {
		if r.Controller != nil && *r.Controller {
			ref = r
			break
		}
	}
	switch ref.Kind {
	case "ReplicaSet":
		if d, ok := deploymentOf(ref.Name, p.Labels["pod-template-hash"]); ok {
			return "Deployment", d
		}
	case "Job":
		if c, ok := cronJobOf(ref.Name); ok {
			return "CronJob", c
		}
	}
	return ref.Kind, ref.Name
}

// deploymentOf returns the Deployment of a ReplicaSet named rs: the name
// without its "-<hash>" suffix, where hash is the pod's pod-template-hash
// label, or without a label, a suffix of 5 to 10 characters of the
// alphabet Kubernetes encodes hashes with (no vowels, no 0, 1 or 3).
func deploymentOf(rs, hash string) (string, bool) {
	i := strings.LastIndexByte(rs, '-')
	if i <= 0 {
		return "", false
	}
	suffix := rs[i+1:]
	if hash != "" {
		return rs[:i], suffix == hash
	}
	if len(suffix) < 5 || len(suffix) > 10 {
		return "", false
	}
	for _, c := range suffix {
		if !strings.ContainsRune("bcdfghjklmnpqrstvwxz2456789", c) {
			return "", false
		}
	}
	return rs[:i], true
}

// cronJobOf returns the CronJob of a Job named job: the name without its
// "-<n>" suffix, where n (the scheduled time in minutes since the epoch) is
// at least 8 digits.
func cronJobOf(job string) (string, bool) {
	i := strings.LastIndexByte(job, '-')
	if i <= 0 || len(job)-i-1 < 8 {
		return "", false
	}
	for _, c := range job[i+1:] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return job[:i], true
}
