//go:build tools

// Package tools names the commands tests/kube/build.sh builds, so that go.mod and go.sum pin
// them. The build tag keeps it out of every ordinary build; `go build` builds the commands by
// their import paths.
package tools

import (
	// etcd's root package is its `main`.
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	// kubectl of the same minor as the API server (the one .ci/tools.sh installs is v1.35,
	// outside kubectl's one-minor skew for a v1.37 server).
	_ "k8s.io/kubernetes/cmd/kubectl"
)
