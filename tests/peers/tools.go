//go:build tools

// Package tools names what tests/peers/build.sh builds and the tier-5 tests run, so that go.mod
// and go.sum pin them. The build tag keeps it out of every ordinary build; `go build` builds the
// commands by their import paths, `go test -tags integration` runs the integration package.
package tools

import (
	_ "github.com/bitnami/sealed-secrets/cmd/controller"
	_ "github.com/bitnami/sealed-secrets/cmd/kubeseal"
	// What the module's integration package (only _test.go files under the `integration` tag,
	// so not importable itself) needs beyond the commands: without these, `go mod tidy` would
	// drop their go.sum lines and `go test -mod=readonly` of the suite would refuse to run.
	_ "github.com/onsi/ginkgo/v2"
	_ "github.com/onsi/gomega"
)
