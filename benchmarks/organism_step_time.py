"""Benchmark: one pretraining step of a profile's organism (GPT-2 blocks, the organism's sizes) on each
device this machine has, to size the organism chapters on a GPU runner.

    python benchmarks/organism_step_time.py [--profile gpu] [--steps 30] [--vocab 274]

Standalone on purpose (torch and transformers only, no emgeom import), so it runs on a bare GPU machine:
it reads the profile's ``shared`` sizes from ``ci/profiles/<profile>.yaml``, builds a random-weight
``GPT2LMHeadModel`` of that size (the organism's vocabulary has 274 words), and times AdamW steps
under bf16 autocast on random tokens, after warm-up steps. Prints milliseconds per step and the implied
pretraining time of one organism (``pretrain_steps``) per device.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml
from transformers import GPT2Config, GPT2LMHeadModel

N_CTX = 72  # the organism's documents are padded to about this many tokens per row


def step_ms(device: str, cfg: GPT2Config, batch: int, steps: int, warmup: int = 5) -> float:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    tokens = torch.randint(0, cfg.vocab_size, (batch, N_CTX), device=device)
    for i in range(warmup + steps):
        if i == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--vocab", type=int, default=274)
    args = parser.parse_args()
    shared = yaml.safe_load(Path(f"ci/profiles/{args.profile}.yaml").read_text())["shared"]
    d, layers, heads = shared["d_model"], shared["n_layers"], shared["n_heads"]
    batch, pretrain = shared["pretrain_batch_size"], shared["pretrain_steps"]
    cfg = GPT2Config(
        vocab_size=args.vocab,
        n_positions=128,
        n_embd=d,
        n_layer=layers,
        n_head=heads,
        n_inner=4 * d,
        bos_token_id=0,
        eos_token_id=0,
        loss_type="ForCausalLM",
    )
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"profile {args.profile}: d_model {d}, {layers} layers, batch {batch} x {N_CTX} tokens")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for device in devices:
        ms = step_ms(device, cfg, batch, args.steps)
        name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
        print(f"{name}: {ms:.1f} ms/step; {pretrain} pretraining steps = {ms * pretrain / 1000:.0f} s")


if __name__ == "__main__":
    main()
