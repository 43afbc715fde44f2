"""trainer: CLIP models, tokenizer, contrastive loss and optimisation (Radford et al. 2021), and the harness that
trains them on WebDataset shards with Ray Train (docs/trainer.md, docs/training.md).

Terms used throughout:
- tower: the image encoder (`visual`: modified ResNet or ViT) or the text encoder (causal transformer).
- features: a tower's output projected into the joint embedding (`embed_dim`), L2-normalised before the loss.
- logit scale: the learned inverse temperature t, stored as log t (`logit_scale`), initialised to log(1/0.07);
  logits are cosine similarities times exp(t), never more than 100.
- SOT / EOT: the start- and end-of-text tokens (ids 49406 / 49407 in OpenAI's vocabulary); text features are read
  at EOT, the highest id in each row; rows are padded with 0 to the 77-token context.
- family: 'resnet' or 'vit', which picks the paper's Adam betas/eps.
- local / global batch: the pairs one worker holds (b) / all workers together (N = b * world size).
- OpenAI layout: the state-dict key names of OpenAI's released checkpoints, which OpenCLIP shares.

- epoch: one pass over the shards in shard order, each sample once across all workers (trainer/data.py says how).

The model library (config, models, tokenizer, loss, optim) never imports Ray or the training harness (data: shards
to batches; loop: one training step; run_config: a run's settings; ray_train: the TorchTrainer, checkpoints, resume).
"""
