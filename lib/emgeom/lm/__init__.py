"""Language-model plumbing for any causal LM: loading, chat encoding, batching, training, LoRA
fine-tuning and sampling."""
