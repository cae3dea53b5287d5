"""What a workdir holds and who may write it: `config_file` (config.json, the
experiment it holds), `ownership` (one owner at a time), `checkpoint` (the
only orbax), `metrics` (metrics.jsonl, TensorBoard, the progress line),
`results` (results.json, eval/<step>.json) and `provenance` (provenance.json:
what produced them)."""
