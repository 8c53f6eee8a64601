//go:build tools

// Package tools pins Dapr's sidecar, daprd, which the local cluster runs as the daprd container
// of pods annotated dapr.io/enabled; it is never compiled.
package tools

import _ "github.com/dapr/dapr/cmd/daprd"
