// Package sluice holds the project's reference texts that the binary
// embeds, so that documentation is generated from one source: the example
// configuration is both the file operators copy and the source of
// sluice.toml(5).
package sluice

import _ "embed"

// ExampleConfig is sluice.example.toml: every key, its default and what
// it does.
//
//go:embed sluice.example.toml
var ExampleConfig string
