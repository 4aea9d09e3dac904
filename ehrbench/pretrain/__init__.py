"""A pretrained contestant: a self-supervised next-code transformer over MEDS event streams.

`settings` holds the typed settings, `tokens` the train-only vocabulary and tokenisation,
`network` the causal transformer, `training` the resumable training loop, `represent` the
frozen embeddings of label rows, and `commands` the `pretrain` and `represent` verbs.
"""
