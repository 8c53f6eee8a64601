"""`spikeprof ui`: a read-only web UI over the captures, from the volume or an object store.

`markup` escapes every value put into a page, `pages` lays the pages out (pure), and `server`
answers HTTP, reading captures through adapters.artifact_reader like `spikeprof captures`.
"""
