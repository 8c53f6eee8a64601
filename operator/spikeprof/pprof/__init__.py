"""pprof formats: checking that a body is what it claims to be (decoding comes with analysis)."""
