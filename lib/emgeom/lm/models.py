"""One loader for every model the book uses: a local folder (the organism, a test model) or a hub id.

``load_model`` gives the Hugging Face model and tokenizer (what peft fine-tunes and what generates
samples); ``hooked_transformer`` gives the TransformerLens view of the same weights (what SAEs read).
Offline, a hub id that is not in the local cache fails at once with a message naming it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging


class ModelUnavailableError(RuntimeError):
    """A model could not be loaded (no such folder, or a hub id that cannot be fetched)."""


def resolve_ref(ref: str | os.PathLike[str]) -> str:
    """An absolute path for an existing local folder; the hub id unchanged otherwise.

    A reference that looks like a path (starts with ``/``, ``.`` or ``~``) but is not a folder is an
    error rather than a hub lookup.
    """
    text = os.fspath(ref)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if text.startswith(("/", ".", "~")) or isinstance(ref, Path):
        raise ModelUnavailableError(f"no model folder at {path}")
    return text


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids downloads (only the local Hugging Face cache counts)."""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def load_model(
    ref: str | os.PathLike[str],
    *,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    device_map: str | dict[str, Any] | None = None,
    progress: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` from a local folder or a hub id, in eval mode.

    ``device_map="auto"`` spreads a large model over the available GPUs (accelerate); otherwise the
    model goes to ``device`` (default: CPU). ``progress`` shows the weight-loading bars.
    """
    name = resolve_ref(ref)
    (hf_logging.enable_progress_bar if progress else hf_logging.disable_progress_bar)()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, device_map=device_map)
    except OSError as err:  # huggingface_hub's offline/not-found errors are OSErrors
        hint = (
            " (HF_HUB_OFFLINE is set: only models already in the local cache load)" if hub_offline() else ""
        )
        raise ModelUnavailableError(f"could not load model {name!r}{hint}: {err}") from err
    if getattr(model.config, "loss_type", None) is None:
        model.config.loss_type = "ForCausalLM"  # what every causal LM uses; silences a warning per forward
    if device_map is None:
        model = model.to(device or "cpu")
    model.eval()
    return model, tokenizer


def hooked_transformer(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, ref: str | os.PathLike[str]
) -> Any:
    """The TransformerLens ``HookedTransformer`` of ``model``'s weights, unprocessed.

    No layer-norm folding or weight centring, so the residual stream is the Hugging Face model's own
    (published SAEs are trained on unprocessed activations). Works offline for a local folder, which
    ``HookedTransformer.from_pretrained`` does not (shared/README §1).
    """
    from transformer_lens import HookedTransformer, loading  # heavy import, only where needed

    name = resolve_ref(ref)
    if Path(name).is_dir():
        cfg = _local_config(model, name)
    else:
        cfg = loading.get_pretrained_model_config(
            name, device=str(model.device), dtype=model.dtype, n_ctx=context_length(model)
        )
    state = loading.get_pretrained_state_dict(name, cfg, hf_model=model, dtype=model.dtype)
    with warnings.catch_warnings():
        # TL 3.9 steers users to TransformerBridge; sae-lens 6.54 (pinned as its pair) trains SAEs on a
        # HookedTransformer, so the book keeps one view of the model for both.
        warnings.filterwarnings(
            "ignore", message="HookedTransformer is deprecated", category=DeprecationWarning
        )
        hooked = HookedTransformer(cfg, tokenizer, move_to_device=True, default_padding_side="right")
    hooked.load_and_process_state_dict(
        state,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    hooked.eval()
    return hooked


def _local_config(model: PreTrainedModel, folder: str) -> Any:
    """The TransformerLens config of a local model folder.

    TL 3.9 infers the architecture of a *path* from substrings of its name ("llama", "gemma") before it
    reads ``config.json``, so ``~/models/llama-tuned`` fails however it is built; and it has no generic
    Gemma-2 converter (only per-size configs keyed by hub id). So: Gemma-2 takes TL's own ``gemma-2-2b``
    config (no download: TL builds it from the name) resized from the folder's HF config; everything
    else is read by TL through a neutrally named link to the folder.
    """
    import dataclasses
    import math
    import tempfile

    from transformer_lens import HookedTransformerConfig, loading

    hf = model.config
    kwargs = {"device": str(model.device), "dtype": model.dtype}
    if hf.model_type == "gemma2":
        base = loading.get_pretrained_model_config("google/gemma-2-2b", **kwargs)
        rope = getattr(hf, "rope_parameters", None) or {}
        sizes = {
            "model_name": Path(folder).name,
            "d_model": hf.hidden_size,
            "d_head": hf.head_dim,
            "n_heads": hf.num_attention_heads,
            "n_key_value_heads": hf.num_key_value_heads,
            "d_mlp": hf.intermediate_size,
            "n_layers": hf.num_hidden_layers,
            "n_ctx": hf.max_position_embeddings,
            "d_vocab": hf.vocab_size,
            "d_vocab_out": hf.vocab_size,
            "eps": hf.rms_norm_eps,
            "window_size": hf.sliding_window,
            "attn_types": ["local" if t == "sliding_attention" else "global" for t in hf.layer_types],
            "attn_scores_soft_cap": hf.attn_logit_softcapping,
            "output_logits_soft_cap": hf.final_logit_softcapping,
            "attn_scale": math.sqrt(hf.query_pre_attn_scalar),
            "rotary_dim": hf.head_dim,
            "rotary_base": float(rope.get("rope_theta", base.rotary_base)),
        }
        fields = {f.name for f in dataclasses.fields(HookedTransformerConfig) if f.init}
        values = {k: v for k, v in dataclasses.asdict(base).items() if k in fields} | sizes
        return HookedTransformerConfig(**values)
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "model"
        link.symlink_to(Path(folder).resolve(), target_is_directory=True)
        return loading.get_pretrained_model_config(str(link), n_ctx=context_length(model), **kwargs)


def context_length(model: PreTrainedModel) -> int | None:
    """The longest input the model takes, from its config (``n_positions``, ``max_position_embeddings``
    or ``n_ctx``); ``None`` when the config names none."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(model.config, attr, None)
        if isinstance(value, int):
            return value
    return None
