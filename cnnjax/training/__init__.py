"""The training core: the loop and its plan (`train`), the pure per-device
steps (`steps`), optimizers and schedules (`optim`), devices and processes
(`parallel`, the only `pmap`; `cluster`, the multi-process flags), why and how
a run stops early (`stopping`, `guards`) and starting from other weights
(`finetune`)."""
