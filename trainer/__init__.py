"""trainer: CLIP models, tokenizer, loss and the Ray Train loop (arrives with the training issue)."""
