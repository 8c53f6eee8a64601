//go:build tools

// Package tools pins the MinIO server the object-store tests run; it is never compiled.
package tools

import _ "github.com/minio/minio"
